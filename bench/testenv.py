"""How long the local control plane takes to build (cold) and to start (warm).

The warm start is set beside its floor, measured in the same run: the time until the API
server alone answers /readyz. What lies above that floor (controllers, kwok, three nodes turning
Ready) is ours to keep small. Prints one summary line, quoted in the README.

    python bench/testenv.py [--runs N] [--cold]

--cold builds everything into empty Go module, Go build and testenv caches (several minutes,
and it downloads every module again), then removes them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTENV = REPO / "hack" / "testenv"


def cold_build() -> tuple[float, dict[str, int]]:
    with tempfile.TemporaryDirectory(prefix="duet-bench-cold-") as tmp:
        env = os.environ | {
            "DUET_TESTENV_CACHE": f"{tmp}/testenv",
            "GOMODCACHE": f"{tmp}/gomod",
            "GOCACHE": f"{tmp}/gobuild",
        }
        started = time.monotonic()
        result = subprocess.run(
            [str(TESTENV / "build")], env=env, capture_output=True, text=True, check=True
        )
        elapsed = time.monotonic() - started
        steps = {
            m.group(1): int(m.group(2))
            for m in re.finditer(r"built (\S+) in (\d+)s", result.stderr)
        }
        # The module cache is read-only by design; make it removable.
        subprocess.run(["chmod", "-R", "u+w", tmp], check=False)
        return elapsed, steps


def warm_start(name: str) -> dict[str, float]:
    subprocess.run([str(TESTENV / "build")], capture_output=True, check=True)
    started = time.monotonic()
    out = subprocess.run(
        [str(TESTENV / "up"), name], stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    wall = time.monotonic() - started
    kubeconfig = Path(out.strip().splitlines()[-1])
    timings = json.loads((kubeconfig.parent / "state.json").read_text())["timings"]
    stop_started = time.monotonic()
    subprocess.run([str(TESTENV / "down"), name], capture_output=True, check=True)
    return {
        "wall": wall,
        "apiserver": float(timings["apiserver_ready"]),
        "down": time.monotonic() - stop_started,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true")
    args = parser.parse_args()

    cold = ""
    if args.cold:
        elapsed, steps = cold_build()
        detail = ", ".join(f"{k} {v}s" for k, v in steps.items())
        print(f"cold build: {elapsed:.0f}s ({detail})")
        cold = f"; cold build {elapsed / 60:.1f} min"

    runs = [warm_start(f"bench-{os.getpid()}-{i}") for i in range(args.runs)]
    for i, run in enumerate(runs):
        print(
            f"run {i}: up {run['wall']:.1f}s, API server ready {run['apiserver']:.1f}s, "
            f"down {run['down']:.1f}s"
        )
    wall = statistics.median(r["wall"] for r in runs)
    floor = statistics.median(r["apiserver"] for r in runs)
    print(
        f"testenv: warm start {wall:.1f}s median of {len(runs)} (API server alone {floor:.1f}s, "
        f"x{wall / floor:.1f}){cold}; {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
