"""Reconcile benchmark: N DataPlatforms applied at once, until every one is Ready.

Set beside its baseline, measured in the same run on the same control plane: the same
platforms rendered by `duet render` (the library call behind it) and applied straight with
`kubectl apply --server-side`, until every StatefulSet is Ready. The ratio is the operator's
overhead over what the API server, controllers and kwok need anyway. Also printed: p50/p95
of the reconcile handler (from the operator's own histogram, `kind="DataPlatform"`: the
reconciles a change asks for, creations here; the drift timer's are timed apart as
`DataPlatformResync`) and the operator's peak RSS.

    python bench/reconcile.py [--counts 50 200] [--keep] [--operator-python PYTHON]

`--operator-python`: run the operator with another interpreter, one where Duet is installed
as the image installs it (`pip install .`, no dev extras): the project's own venv also has the
synchronous `kubernetes` client, which kopf imports when it is there (about 7 MB of RSS).

Starts its own local control plane (hack/testenv, name `bench-reconcile`) and operator.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from duet_agents.planner import capacity  # noqa: E402
from duet_operator import credentials  # noqa: E402
from duet_operator.models import DataPlatform  # noqa: E402
from duet_operator.render.config import RenderConfig  # noqa: E402
from duet_operator.render.platform import build_platform  # noqa: E402
from tests.support import testenv_module  # noqa: E402
from tests.support.cluster import kubectl, start_testenv, stop_testenv  # noqa: E402
from tests.support.operator import OperatorProcess  # noqa: E402

ENV = "bench-reconcile"


def platform_doc(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "duet.aidatalabs.ai/v1alpha1",
        "kind": "DataPlatform",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"requirements": {"dataVolume": "50Gi", "concurrentQueries": 4}},
    }


def wait_all(kubeconfig: Path, check: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise TimeoutError(f"not ready after {timeout}s")


# Polled through the server's table view (printer columns), not `-o json`: full objects of a
# few hundred platforms every second cost the 2 cores more than the work being measured.
def table(kubeconfig: Path, kind: str, namespace: str) -> list[list[str]]:
    out = kubectl(kubeconfig, "get", kind, "-n", namespace, "--no-headers")
    return [line.split() for line in out.splitlines() if line.strip()]


def ready_platforms(kubeconfig: Path, namespace: str) -> int:
    return sum(1 for row in table(kubeconfig, "dp", namespace) if row[1] == "Ready")


def ready_statefulsets(kubeconfig: Path, namespace: str) -> tuple[int, int]:
    rows = table(kubeconfig, "sts", namespace)
    ready = sum(1 for row in rows if len(set(row[1].split("/"))) == 1)
    return ready, len(rows)


def buckets(metrics: str, name: str, kind: str) -> dict[float, float]:
    """Cumulative bucket counts of one histogram series, by upper bound."""
    found: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket{{") and f'kind="{kind}"' in line:
            le = line.split('le="')[1].split('"')[0]
            found[float("inf") if le == "+Inf" else float(le)] = float(line.split()[-1])
    return found


def histogram_quantile(counts: dict[float, float], q: float) -> float:
    """A quantile from cumulative buckets, interpolated as Prometheus' histogram_quantile()."""
    buckets = sorted(counts.items())
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / max(count - lower_count, 1e-9)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(count: int, kubeconfig: Path, operator: OperatorProcess) -> dict[str, float]:
    op_ns, raw_ns = f"bench-op-{count}", f"bench-raw-{count}"
    for ns in (op_ns, raw_ns):
        kubectl(kubeconfig, "create", "namespace", ns)

    docs = [platform_doc(f"p{i:03d}", op_ns) for i in range(count)]
    started = time.monotonic()
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs))
    wait_all(kubeconfig, lambda: ready_platforms(kubeconfig, op_ns) == count)
    operator_seconds = time.monotonic() - started

    manifests: list[dict[str, Any]] = []
    for i in range(count):
        platform = DataPlatform.model_validate(platform_doc(f"p{i:03d}", raw_ns))
        design = capacity.plan(platform.spec.plan_request())
        manifests += build_platform(platform, design, RenderConfig(), credentials.fill())
    expected = sum(1 for m in manifests if m["kind"] == "StatefulSet")
    started = time.monotonic()
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(manifests))
    wait_all(kubeconfig, lambda: ready_statefulsets(kubeconfig, raw_ns) == (expected, expected))
    baseline_seconds = time.monotonic() - started

    burst = buckets(operator.metrics(), "duet_reconcile_time_seconds", "DataPlatform")
    return {
        "operator": operator_seconds,
        "baseline": baseline_seconds,
        "p50": histogram_quantile(burst, 0.5),
        "p95": histogram_quantile(burst, 0.95),
    }


def steady(count: int, kubeconfig: Path, operator: OperatorProcess) -> dict[str, float]:
    """Handler time when the API server is not saturated: platforms applied one at a time,
    each waited for; the quantiles of this phase alone (a difference of histograms)."""
    namespace = "bench-op-steady"
    kubectl(kubeconfig, "create", "namespace", namespace)
    before = buckets(operator.metrics(), "duet_reconcile_time_seconds", "DataPlatform")
    for i in range(count):
        doc = platform_doc(f"s{i:03d}", namespace)
        kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(doc))
        wait_all(kubeconfig, lambda i=i: ready_platforms(kubeconfig, namespace) == i + 1)
    after = buckets(operator.metrics(), "duet_reconcile_time_seconds", "DataPlatform")
    delta = {bound: after[bound] - before.get(bound, 0) for bound in after}
    return {"p50": histogram_quantile(delta, 0.5), "p95": histogram_quantile(delta, 0.95)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--keep", action="store_true", help="leave the control plane running")
    # A p95 of 20 samples is their 19th: one slow reconcile moves it (210 to 372 ms on the
    # same code in session 9). 60 make it the 57th.
    parser.add_argument(
        "--steady", type=int, default=60, help="platforms then applied one at a time"
    )
    parser.add_argument(
        "--operator-python",
        default=sys.executable,
        help="the interpreter to run the operator with (default: this one)",
    )
    args = parser.parse_args()

    kubeconfig = start_testenv(ENV)
    # The kubectl built with the control plane, found the way hack/testenv finds it.
    os.environ["DUET_KUBECTL"] = str(testenv_module.load().Binaries.build().kubectl)
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds"))
    log = Path(tempfile.mkdtemp(prefix="duet-bench-")) / "operator.log"
    operator = OperatorProcess(
        kubeconfig, log, resync_seconds=60, namespaces="bench-op-*", python=args.operator_python
    ).start()
    results = {}
    try:
        for count in args.counts:
            results[count] = run(count, kubeconfig, operator)
            r = results[count]
            print(
                f"{count} platforms: Ready in {r['operator']:.1f}s via the operator, "
                f"{r['baseline']:.1f}s applied straight (x{r['operator'] / r['baseline']:.2f}); "
                f"reconcile p50 {r['p50'] * 1000:.0f}ms p95 {r['p95'] * 1000:.0f}ms",
                flush=True,
            )
        quiet = steady(args.steady, kubeconfig, operator)
        print(
            f"{args.steady} platforms one at a time: reconcile p50 {quiet['p50'] * 1000:.0f}ms "
            f"p95 {quiet['p95'] * 1000:.0f}ms",
            flush=True,
        )
        assert operator.process is not None
        rss = peak_rss_mb(operator.process.pid)
    finally:
        operator.stop()
        if not args.keep:
            stop_testenv(ENV)
    largest = max(results)
    r = results[largest]
    print(
        f"reconcile: {largest} platforms Ready in {r['operator']:.0f}s "
        f"(baseline {r['baseline']:.0f}s, x{r['operator'] / r['baseline']:.2f}); handler p95 "
        f"{quiet['p95'] * 1000:.0f}ms one at a time, {r['p95']:.1f}s in the burst; "
        f"operator peak RSS {rss:.0f} MB"
        f"{'' if args.operator_python == sys.executable else ' (installed as in the image)'};"
        f" {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
