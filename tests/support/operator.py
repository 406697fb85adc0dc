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
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from duet_operator.models import GROUP, VERSION
from tests.support.wait import WaitTimeoutError, wait_until

# Test namespaces are named t-<random>; the operator under test watches only those, so it
# never touches anything else on a shared cluster.
TEST_NAMESPACES = "t-*"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OperatorProcess:
    # Those started and not yet stopped: a failing test's report carries their logs' tails.
    running: ClassVar[set[OperatorProcess]] = set()

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        resync_seconds: float = 2,
        namespaces: str | None = TEST_NAMESPACES,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        """`namespaces` None: no --namespace, so DUET_NAMESPACES in `env` (as the chart sets
        it) or else every namespace. `env` is added to the process's environment. `python`:
        the interpreter to run it with (a benchmark's, installed as the image installs it)."""
        self.python = python
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
            # A memory of its own: lessons from other tests (or earlier runs, in the default
            # ~/.local/state) must not change the designs this operator's tests check.
            "DUET_MEMORY__URL": f"sqlite:///{self.log_path.parent / 'memory.db'}",
        }
        # kwok's pods run no database: probing them would only report them unreachable (and
        # hold a rollout for its grace). A test with servers to probe names them in
        # DUET_PROBE_URLS, which turns the probes on.
        if "DUET_PROBE_URLS" not in self.env and "DUET_PROBE_ENABLED" not in self.env:
            env["DUET_PROBE_ENABLED"] = "false"
        env.update(self.env)
        command = [
            *(self.python, "-m", "duet_operator.cli", "operator", "run"),
            *("--metrics-port", str(self.metrics_port)),
            *(("--namespace", self.namespaces) if self.namespaces is not None else ()),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        OperatorProcess.running.add(self)
        wait_until(self.ready, timeout=60, what=f"the operator to be ready (log: {self.log_path})")
        self.wait_watching()
        return self

    def wait_watching(self, attempts: int = 5) -> None:
        """Return once a namespace created from now on is served.

        kopf (1.45) lists the namespaces a pattern matches, then starts a namespace watch whose
        own initial listing it ignores: a namespace created between the two is never served. A
        process that has just become ready may be in that gap, and a test's namespace created
        then would wait forever (a CI run lost 90 s and its first test to it). A QueryAgent in
        a fresh namespace of the pattern that gets a status proves the watch is running; one
        that gets none fell in the gap, so another namespace is tried.
        """
        pattern = next((p for p in (self.namespaces or "").split(",") if p.endswith("*")), None)
        if pattern is None:
            # Exact names are listed once at start (they exist by then) or watched cluster-wide.
            return
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        try:
            for _ in range(attempts):
                name = f"{pattern.removesuffix('*')}canary-{uuid.uuid4().hex[:8]}"
                core.create_namespace({"metadata": {"name": name}})
                try:
                    if self._canary_answered(custom, name):
                        return
                finally:
                    core.delete_namespace(name)
            raise RuntimeError(f"the operator serves no new namespace:\n{self.log_tail()}")
        finally:
            api.close()

    @staticmethod
    def _canary_answered(custom: Any, namespace: str) -> bool:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "QueryAgent",
            "metadata": {"name": "canary"},
            # A platform that does not exist: the answer is a status and nothing else.
            "spec": {"platformRef": {"name": "absent"}},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "queryagents", body)

        def answered() -> bool:
            found = custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "queryagents", "canary"
            )
            return bool(found.get("status", {}).get("phase"))

        try:
            wait_until(answered, timeout=10, what=f"a status on the canary in {namespace}")
        except WaitTimeoutError:
            return False
        return True

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

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` (as exposed: a counter with its `_total`) whose
        labels include `labels`; 0 for a series not there yet."""
        return sum(
            sample.value
            for family in text_string_to_metric_families(self.metrics())
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        OperatorProcess.running.discard(self)
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
def serving(process: OperatorProcess) -> Iterator[OperatorProcess]:
    """`process` started for a fixture's span, then stopped."""
    process.start()
    try:
        yield process
    finally:
        process.stop()


def log_sections(lines: int = 80) -> list[tuple[str, str]]:
    """The tails of the running operators' logs, as report sections: CI keeps only the output,
    so a failing test must carry the operator's side of the story itself."""
    return [
        (f"operator log {p.log_path} (last {lines} lines)", p.log_tail(lines))
        for p in sorted(OperatorProcess.running, key=lambda p: str(p.log_path))
    ]
