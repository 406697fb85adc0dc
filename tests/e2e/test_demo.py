"""The newcomer's path: `hack/demo` (what `make demo` runs) on a local control plane of its
own, as a user runs it, then each of its steps checked where it left its mark: in what it
printed, in the cluster, in the operator's log and on the operator's /metrics; and
`hack/testenv/down` stops all of it, the operator it started included."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from duet_operator.models import GROUP, VERSION
from tests.support.cluster import REPO, stop_testenv
from tests.support.operator import free_port
from tests.support.testenv_module import load

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("DUET_TEST_CLUSTER") == "existing",
        reason="the demo starts a local control plane of its own (run without DUET_TEST_CLUSTER)",
    ),
    # The demo itself runs in the first test's setup: a control plane, a chart, two waits.
    pytest.mark.timeout(900),
]

NAMESPACE = "duet-demo"
# The demo's steps, in the order a newcomer sees them.
STEPS = (
    "Local control plane",
    "Duet's CustomResourceDefinitions",
    "The Helm chart",
    "The operator, as the chart's ServiceAccount",
    "A DataPlatform",
    "What Duet made of it",
    "A QueryAgent over it",
    "Duet's objects: kubectl get dp,qa,rem",
    "Mock data and questions",
    "Metrics, as Prometheus scrapes them",
    "Ready. To look around",
)
# Refusals as the API server and kopf word them. A bare "403" would also match a
# log timestamp's milliseconds (",403"), so the code is matched only as a status.
REFUSALS = ("forbidden", "not enough permissions", "status=403", "(403)", "'code': 403")


@dataclass(frozen=True)
class Demo:
    name: str
    output: str
    returncode: int
    metrics_port: int
    kubeconfig: Path

    @property
    def state(self) -> Path:
        return self.kubeconfig.parent

    def api(self) -> Any:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    name = f"e2e-demo-{os.getpid()}"
    port = free_port()
    env = os.environ | {"DUET_DEMO_TESTENV": name, "DUET_DEMO_METRICS_PORT": str(port)}
    try:
        result = subprocess.run(
            [str(REPO / "hack" / "demo")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=840,
            check=False,
        )
        found = re.search(r"export KUBECONFIG=(\S+)", result.stdout)
        kubeconfig = Path(found.group(1)) if found else Path("/nonexistent")
        yield Demo(name, result.stdout, result.returncode, port, kubeconfig)
    finally:
        stop_testenv(name)


def test_the_demo_runs_every_step_in_order(demo: Demo) -> None:
    assert demo.returncode == 0, f"hack/demo failed; its output ends:\n{demo.output[-3000:]}"
    positions = [demo.output.find(f"==> {step}") for step in STEPS]
    missing = [step for step, at in zip(STEPS, positions, strict=True) if at < 0]
    assert not missing, f"steps not shown: {missing}"
    assert positions == sorted(positions), "the steps are shown out of order"
    assert "demo failed" not in demo.output


def test_the_chart_is_installed_and_the_operator_needs_nothing_more(demo: Demo) -> None:
    api = demo.api()
    rbac = client.RbacAuthorizationV1Api(api)
    # watchNamespaces: a Role in the demo's namespace, bound to the chart's ServiceAccount.
    (binding,) = rbac.list_namespaced_role_binding(
        NAMESPACE, label_selector="app.kubernetes.io/instance=duet"
    ).items
    (subject,) = binding.subjects
    assert (subject.kind, subject.namespace) == ("ServiceAccount", "duet-system")
    assert binding.role_ref.kind == "Role"
    dashboards = client.CoreV1Api(api).list_namespaced_config_map(
        "duet-system", label_selector="grafana_dashboard=1"
    )
    assert len(dashboards.items) >= 3, "the chart's dashboards are ConfigMaps for Grafana"
    # The operator ran under that account, and was never refused anything.
    operator_user = (demo.state / "duet-operator.kubeconfig").read_text()
    assert f"name: {subject.name}" in operator_user
    log = (demo.state / "duet-operator.log").read_text().lower()
    refused = [line for line in log.splitlines() if any(r in line for r in REFUSALS)]
    assert not refused, "the operator was refused:\n" + "\n".join(refused[:10])


def test_the_examples_are_ready_and_listed(demo: Demo) -> None:
    custom = client.CustomObjectsApi(demo.api())
    platform = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "dataplatforms", "clickstream"
    )
    assert platform["status"]["phase"] == "Ready"
    design = platform["status"]["design"]
    assert design["clickhouse"]["shards"] >= 1
    assert design["rationale"]
    agent = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "queryagents", "ask")
    assert agent["status"]["phase"] == "Ready"
    # `kubectl get dp,qa,rem` printed both, Ready.
    listed = demo.output[demo.output.find("==> Duet's objects") :]
    assert re.search(r"dataplatform\.duet\.aidatalabs\.ai/clickstream\s+Ready", listed)
    assert re.search(r"queryagent\.duet\.aidatalabs\.ai/ask\s+Ready", listed)


def test_the_questions_are_answered_in_sql_with_rows(demo: Demo) -> None:
    questions = demo.output[demo.output.find("==> Mock data") : demo.output.find("==> Metrics")]
    answers = questions.split('$ duet ask "')[1:]
    assert len(answers) == 3
    for answer in answers:
        assert "\nSELECT " in answer, f"no SQL in:\n{answer}"
    # `duet mock --rows 500` wrote 500 orders, and the count says so.
    assert re.search(r"SELECT COUNT\(\*\).* FROM orders\b", answers[0]), answers[0]
    assert re.search(r"\n500\n", answers[0]), answers[0]
    assert "# Schema of shop" in questions
    assert "erDiagram" in questions


def test_the_operator_metrics_say_what_the_cluster_says(demo: Demo) -> None:
    text = demo.metrics()
    ready = f'duet_platforms{{name="clickstream",namespace="{NAMESPACE}",phase="Ready"}} 1.0'
    assert ready in text
    replicas = {
        (m["component"], m["state"]): float(m["value"])
        for m in re.finditer(
            r'duet_platform_replicas\{component="(?P<component>\w+)",name="clickstream",'
            rf'namespace="{NAMESPACE}",state="(?P<state>\w+)"\}} (?P<value>[\d.]+)',
            text,
        )
    }
    assert {c for c, _ in replicas} == {"clickhouse", "keeper", "postgres"}
    for component in ("clickhouse", "keeper", "postgres"):
        assert replicas[component, "ready"] == replicas[component, "desired"] > 0


def test_demo_down_stops_the_operator_with_the_control_plane(demo: Demo) -> None:
    pid = int((demo.state / "duet-operator.pid").read_text())
    stop_testenv(demo.name)
    assert not load().pid_alive(pid), "the demo's operator outlived `down`"
    with pytest.raises((urllib.error.URLError, OSError)):
        demo.metrics()
