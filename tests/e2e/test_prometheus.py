"""The user's monitoring path end to end: a real Prometheus (Debian's package) scrapes the
operator while it runs a platform, and a query server while it answers; every expression the
chart's dashboards and alerts use is then evaluated against it and finds its series."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from duet_operator.models import GROUP, VERSION
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess, free_port
from tests.support.wait import wait_until
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


@pytest.fixture
def prometheus(
    tmp_path: Path, duet_operator: OperatorProcess, query_server: str
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
                "static_configs": [{"targets": [f"127.0.0.1:{duet_operator.metrics_port}"]}],
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


def test_every_dashboard_and_alert_expression_finds_its_series(
    prometheus: Prometheus, custom: Any, namespace: str, query_server: str
) -> None:
    platform = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": "watched"},
        "spec": {"requirements": {"dataVolume": "50Gi"}},
    }
    create_custom_object(custom, namespace, platform)
    wait_until(
        lambda: prometheus.query(
            f'duet_platforms{{namespace="{namespace}", name="watched", phase="Ready"}} == 1'
        ),
        timeout=120,
        what="the platform to show Ready in Prometheus",
    )

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

    # Panels are meant to show something now; a table of "== 1" rows may rightly be empty.
    for expr in map(substituted, dashboard_expressions()):
        result = prometheus.query(expr)
        if "== 1" not in expr:
            assert result, f"no series for the dashboard query: {expr}"
    # Alerts are quiet on a healthy system; what they watch must exist all the same.
    for expr in alert_expressions() + dashboard_expressions():
        prometheus.query(substituted(expr))
        for name in metric_names(substituted(expr)):
            assert prometheus.query(f"count({name})"), f"no series {name} (in: {expr})"
    assert prometheus.query('absent(up{job="duet"} == 1)') == [], "the operator is up"
