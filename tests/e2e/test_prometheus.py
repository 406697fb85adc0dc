"""The user's monitoring path end to end: a real Prometheus (Debian's package) scrapes an
operator while it plans platforms through a model (one answering, one failing) and heals an
injected failure, and a query server while it answers; every expression the chart's
dashboards and alerts use is then evaluated against it and finds its series."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from duet_agents.planner import capacity, prompts
from duet_agents.planner.policy import as_proposal
from duet_operator.models import GROUP, VERSION, DataPlatform
from tests.support.crds import create_custom_object
from tests.support.failures import Failure, inject_failure
from tests.support.llm_servers import (
    BackgroundLLMServer,
    Scripted,
    openai_error,
    openai_tool_call,
)
from tests.support.operator import OperatorProcess, free_port, serving
from tests.support.wait import WaitTimeoutError, wait_until
from tests.unit.test_chart import (
    GRAFANA_VARIABLES,
    alert_expressions,
    dashboard_expressions,
    metric_names,
)

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed"),
]

READY = 120
HEALED = 90
MODEL = "gpt-4.1-mini"
API_KEY = "sk-duet-e2e-0123456789"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        assert response.headers.get("content-type", "").startswith("application/json"), (
            expr,
            response.status_code,
            response.text[:300],
        )
        body = response.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@pytest.fixture
def query_server(tmp_path: Path) -> Iterator[str]:
    """`duet query serve` on an in-memory chDB, as a QueryAgent's pod runs it."""
    port = free_port()
    env = os.environ | {"DUET_QUERY_DATABASE_URL": "chdb://", "DUET_QUERY_PORT": str(port)}
    command = [sys.executable, "-m", "duet_operator.cli", "query", "serve", "--host", "127.0.0.1"]
    with (tmp_path / "query.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/healthz").status_code == 200,
            timeout=60,
            what="the query server",
            ignore=(httpx.HTTPError,),
        )
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def watched_operator(
    kubeconfig: Path,
    crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """An operator of this module's own, on `obs-*` namespaces (the session's serves `t-*`;
    two operators on one platform would race), looking at each platform every 2 s."""
    log = tmp_path_factory.mktemp("watched") / "operator.log"
    with serving(
        OperatorProcess(
            kubeconfig, log, namespaces="obs-*", env={"DUET_HEAL_INTERVAL_SECONDS": "2"}
        )
    ) as process:
        yield process


@pytest.fixture
def namespace(make_namespace: Callable[[str], str]) -> str:
    return make_namespace("obs")


@pytest.fixture
def prometheus(
    tmp_path: Path, watched_operator: OperatorProcess, query_server: str
) -> Iterator[Prometheus]:
    port = free_port()
    query_target = query_server.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            # The labels the chart's ServiceMonitors give: job="duet" with the platform's own
            # namespace kept (honorLabels), and namespace/service for a query agent.
            {
                "job_name": "duet",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{watched_operator.metrics_port}"]}],
            },
            {
                "job_name": "duet-query",
                "static_configs": [
                    {
                        "targets": [query_target],
                        "labels": {"namespace": "shop", "service": "ask-query"},
                    }
                ],
            },
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    command = [
        str(PROMETHEUS),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_until(
            lambda: httpx.get(f"{server.url}/-/ready").status_code == 200,
            timeout=60,
            what="Prometheus to start",
            ignore=(httpx.HTTPError,),
        )
        wait_until(
            lambda: server.query('up{job="duet"} == 1') and server.query('up{job="duet-query"}'),
            timeout=60,
            what="Prometheus to scrape the operator and the query server",
            ignore=(httpx.HTTPError,),
        )
        yield server
    finally:
        process.terminate()
        process.wait(timeout=15)


def substituted(expr: str) -> str:
    """PromQL as Prometheus gets it from Grafana: variables filled in, and a variable's
    `label_values(metric, label)` as the query Grafana makes of it."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if expr.startswith("label_values("):
        metric, label = (part.strip() for part in expr[len("label_values(") : -1].split(","))
        return f"count by ({label}) ({metric})"
    return expr


def platform_body(name: str, model_url: str, mode: str) -> dict[str, Any]:
    """A small platform planned by an OpenAI-compatible model at `model_url`, healed under
    `mode`."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {
            "requirements": {"dataVolume": "50Gi"},
            "clickhouse": {"shards": 1, "replicas": 1},
            "postgres": {"enabled": False},
            "planner": {
                "provider": "openai",
                "model": MODEL,
                "baseURL": model_url,
                "secretRef": {"name": "llm", "key": "api-key"},
            },
            "autonomy": {"mode": mode},
        },
    }


def model_design(body: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The built-in design of `body`, as a model that agrees with it sends it back."""
    platform = DataPlatform.model_validate(
        body | {"metadata": body["metadata"] | {"namespace": namespace}}
    )
    answer = as_proposal(capacity.plan(platform.spec.plan_request())).wire()
    answer["rationale"] = ["50Gi fits one shard", "pinned to one replica"]
    return answer


def wait_ready(custom: Any, namespace: str, name: str) -> None:
    def ready() -> bool:
        found = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "dataplatforms", name
        )
        return bool(found.get("status", {}).get("phase") == "Ready")

    wait_until(ready, timeout=READY, what=f"platform {name} to be Ready")


def wait_remediation(custom: Any, namespace: str, pod: str, phase: str) -> None:
    seen: list[Any] = []

    def probe() -> bool:
        found = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "remediations")
        seen[:] = [(r["metadata"]["name"], r.get("status")) for r in found["items"]]
        return any(
            r["spec"]["symptom"]["object"] == f"pod/{pod}"
            and (r.get("status") or {}).get("phase") == phase
            for r in found["items"]
        )

    try:
        wait_until(probe, timeout=HEALED, what=f"a Remediation of {pod} to be {phase}")
    except WaitTimeoutError as e:
        raise WaitTimeoutError(f"{e}; remediations: {seen}") from None


# Series this scenario cannot make: the WAL spool is read from a PostgreSQL server of a
# platform with spec.backup, and kwok runs none (tests/integration/test_probes.py has the
# operator export them from a real server).
NO_SERIES_HERE = {"duet_postgres_wal_spool_oldest_seconds", "duet_postgres_wal_spool_files"}


def series_of(prometheus: Prometheus, expr: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: prometheus.query(expr)


def test_every_dashboard_and_alert_expression_finds_its_series(
    prometheus: Prometheus, custom: Any, core: Any, namespace: str, query_server: str
) -> None:
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="llm"), string_data={"api-key": API_KEY}),
    )
    # "healed": planned by a model that answers, and healed in auto mode (restartPod applied
    # and verified: remediations, MTTR). "fallback": its model fails, so the planner falls
    # back to the built-in design; in observe mode its failure is recorded and left alone,
    # so a symptom stays active.
    design = openai_tool_call(
        prompts.TOOL_NAME,
        model_design(platform_body("healed", "http://unused", "auto"), namespace),
        prompt_tokens=1800,
        completion_tokens=250,
    )
    broken = Scripted(openai_error("overloaded"), status=500, headers={"x-should-retry": "false"})
    with (
        BackgroundLLMServer([Scripted(design)]) as answering,
        BackgroundLLMServer([broken] * 3) as failing,
    ):
        healed = platform_body("healed", answering.openai_url, "auto")
        create_custom_object(custom, namespace, healed)
        fallback = platform_body("fallback", failing.openai_url, "observe")
        create_custom_object(custom, namespace, fallback)
        wait_ready(custom, namespace, "healed")
        wait_ready(custom, namespace, "fallback")
        # Planned once per spec change: neither model is asked again.

    inject_failure(core, (namespace, "healed-clickhouse-0-0"), Failure.CRASH_LOOP)
    inject_failure(core, (namespace, "fallback-clickhouse-0-0"), Failure.CRASH_LOOP)
    wait_remediation(custom, namespace, "healed-clickhouse-0-0", "Verified")
    wait_remediation(custom, namespace, "fallback-clickhouse-0-0", "Rejected")

    def traffic() -> None:
        for sql in ("SELECT 1", "SELECT number FROM numbers(3)", "DROP TABLE x"):
            httpx.post(f"{query_server}/v1/sql", json={"sql": sql}, timeout=10)

    # A counter's series starts at its first increment, so rate() shows the second round.
    traffic()
    wait_until(
        lambda: prometheus.query("duet_query_blocked_total"),
        timeout=30,
        what="the query server's counters to be scraped",
    )
    traffic()
    wait_until(
        lambda: prometheus.query("rate(duet_query_blocked_total[1m]) > 0"),
        timeout=30,
        what="the query server's refusals to show as a rate",
    )

    # What the scenario was for, as Prometheus sees it.
    for expr in (
        f'duet_llm_requests_total{{agent="planner", model="{MODEL}", outcome="ok"}} == 1',
        f'duet_llm_requests_total{{agent="planner", model="{MODEL}", outcome="unavailable"}}',
        f'duet_llm_tokens_total{{model="{MODEL}", direction="input"}} == 1800',
        'duet_planner_fallbacks_total{reason="unavailable"}',
        'duet_remediations_total{action="restartPod", mode="auto", result="verified"}',
        'duet_remediations_total{action="restartPod", mode="observe", result="recorded"}',
        "duet_mttr_seconds_count > 0",
        f'duet_symptoms_active{{platform="{namespace}/fallback", symptom="CrashLoop"}} == 1',
    ):
        wait_until(series_of(prometheus, expr), timeout=30, what=f"a series for {expr}")

    # Panels are meant to show something now; a table of "== 1" rows may rightly be empty.
    # The last scrapes may not be in yet: wait until every panel has its series.
    panels = [e for e in map(substituted, dashboard_expressions()) if "== 1" not in e]
    missing: list[str] = []

    def every_panel_found() -> bool:
        missing[:] = [e for e in panels if not prometheus.query(e)]
        return not missing

    try:
        wait_until(every_panel_found, timeout=30, what="every dashboard query to return series")
    except WaitTimeoutError:
        raise AssertionError(f"no series for the dashboard queries: {missing}") from None
    # Alerts are quiet on a healthy system; what they watch must exist all the same.
    for expr in alert_expressions() + dashboard_expressions():
        prometheus.query(substituted(expr))
        for name in metric_names(substituted(expr)) - NO_SERIES_HERE:
            assert prometheus.query(f"count({name})"), f"no series {name} (in: {expr})"
    assert prometheus.query('absent(up{job="duet"} == 1)') == [], "the operator is up"
    # Nothing failed: the remediation alert stays quiet.
    (failed,) = [e for e in alert_expressions() if 'result="failed"' in e]
    assert prometheus.query(failed) == []
