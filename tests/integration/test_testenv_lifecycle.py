"""Two named control planes run side by side, and `down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import TESTENV, start_testenv, stop_testenv
from tests.support.testenv_module import load

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("DUET_TEST_CLUSTER") == "existing",
        reason="exercises hack/testenv itself, not the cluster under test",
    ),
]

testenv = load()


def server_of(kubeconfig: Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def status(name: str) -> int:
    return subprocess.run(
        ["python3", str(TESTENV / "testenv.py"), "status", name], capture_output=True, check=False
    ).returncode


def test_a_second_environment_runs_beside_the_first_and_goes_away_cleanly(
    kubeconfig: Path,
) -> None:
    side = f"pytest-{os.getpid()}-side"
    try:
        side_config = start_testenv(side)
        assert server_of(side_config) != server_of(kubeconfig)
        assert status(side) == 0
        # Starting it again reuses it rather than starting a second copy.
        assert start_testenv(side) == side_config
        state_dir = side_config.parent
        pids = json.loads((state_dir / "state.json").read_text())["pids"]
        assert set(pids) == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        }
    finally:
        stop_testenv(side)

    assert status(side) == 1
    assert not state_dir.exists()
    assert not [pid for pid in pids.values() if testenv.pid_alive(pid)]
    # The session's own environment is untouched.
    assert status(kubeconfig.parent.name) == 0
