"""The cluster the integration tests run against.

By default a private local control plane (hack/testenv) started once per test session; with
`DUET_TEST_CLUSTER=existing`, the cluster `$KUBECONFIG` points at (kind, microk8s, ...), so the
same tests run on a real cluster.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTENV = REPO / "hack" / "testenv"


def start_testenv(name: str) -> Path:
    """Start the named local control plane and return its kubeconfig."""
    result = subprocess.run(
        [str(TESTENV / "up"), name], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"hack/testenv/up {name} failed (its log is above)")
    return Path(result.stdout.strip().splitlines()[-1])


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    """kubectl's output (`DUET_KUBECTL`, else the one on PATH); raises when it fails."""
    kube = os.environ.get("DUET_KUBECTL", "kubectl")
    return subprocess.run(
        [kube, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def stop_testenv(name: str) -> None:
    subprocess.run([str(TESTENV / "down"), name], check=False)


@contextlib.contextmanager
def cluster_under_test() -> Iterator[Path]:
    """Yield a kubeconfig for the cluster under test, and clean up what we started."""
    if os.environ.get("DUET_TEST_CLUSTER") == "existing":
        kubeconfig = Path(os.environ.get("KUBECONFIG", "~/.kube/config")).expanduser()
        if not kubeconfig.is_file():
            raise RuntimeError(f"DUET_TEST_CLUSTER=existing but no kubeconfig at {kubeconfig}")
        yield kubeconfig
        return
    name = f"pytest-{os.getpid()}"
    try:
        yield start_testenv(name)
    finally:
        stop_testenv(name)
