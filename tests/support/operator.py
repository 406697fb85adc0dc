"""The operator under test: `duet operator run` as a real process against the cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.wait import wait_until

# Test namespaces are named t-<random>; the operator under test watches only those, so it
# never touches anything else on a shared cluster.
TEST_NAMESPACES = "t-*"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        resync_seconds: float = 2,
        namespaces: str | None = TEST_NAMESPACES,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`namespaces` None: no --namespace, so DUET_NAMESPACES in `env` (as the chart sets
        it) or else every namespace. `env` is added to the process's environment."""
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.env = dict(env or {})
        self.log_path = log_path
        self.metrics_port = free_port()
        self.resync_seconds = resync_seconds
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> OperatorProcess:
        env = os.environ | {
            "KUBECONFIG": str(self.kubeconfig),
            "DUET_RESYNC_SECONDS": str(self.resync_seconds),
            "DUET_APPLY_RETRY_SECONDS": "1",
        }
        env.update(self.env)
        command = [
            *(sys.executable, "-m", "duet_operator.cli", "operator", "run"),
            *("--metrics-port", str(self.metrics_port)),
            *(("--namespace", self.namespaces) if self.namespaces is not None else ()),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.ready, timeout=60, what=f"the operator to be ready (log: {self.log_path})")
        return self

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the operator exited:\n{self.log_tail()}")
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text: str = response.read().decode()
            return text

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, *, resync_seconds: float) -> None:
        self.stop()
        self.resync_seconds = resync_seconds
        self.start()

    def kill(self) -> None:
        """As a crash or an evicted pod would: no cleanup, no goodbye."""
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def serving(process: OperatorProcess, request: pytest.FixtureRequest) -> Iterator[OperatorProcess]:
    """`process` started for a fixture's span, then stopped. CI keeps only the output: when
    a test failed, the operator's side of the story goes into it."""
    process.start()
    try:
        yield process
    finally:
        process.stop()
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if request.session.testsfailed and reporter is not None:
            reporter.write_line(f"--- the operator's log ({process.log_path}), last lines ---")
            reporter.write_line(process.log_tail(80))
