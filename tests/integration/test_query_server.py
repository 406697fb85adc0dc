"""The query server over a real chDB database, through HTTP: SQL answered read-only and
capped, refusals with their reason (firewall and table filter), the schema filtered, rate
limits, and the metrics the dashboards use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from duet_agents.memory import MemoryStore
from duet_agents.query.server import RateLimiter, create_app
from duet_agents.query.settings import QueryServerSettings
from duet_operator.cli import app
from tests.support.operator import free_port
from tests.support.wait import wait_until
from tests.unit.test_memory_store import PATTERN, record_oom_fixed

SCHEMA = [
    "CREATE DATABASE shop",
    "CREATE TABLE shop.customers (id UInt64, name String, country LowCardinality(String))"
    " ENGINE = MergeTree ORDER BY id",
    "CREATE TABLE shop.orders (id UInt64, customer_id UInt64, total Decimal(10, 2))"
    " ENGINE = MergeTree ORDER BY id",
    "CREATE TABLE shop.secrets (id UInt64, token String) ENGINE = MergeTree ORDER BY id",
    "INSERT INTO shop.customers SELECT number, concat('c', toString(number)),"
    " ['NL', 'DE'][number % 2 + 1] FROM numbers(10)",
    "INSERT INTO shop.orders SELECT number, number % 10, number * 2 FROM numbers(100)",
    "INSERT INTO shop.secrets VALUES (1, 'hunter2')",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chdb-server") / "data"
    admin = clickhouse_connect.get_client(interface="chdb", path=str(path))
    try:
        for statement in SCHEMA:
            admin.command(statement)
    finally:
        admin.close()
    return path


def server(data_dir: Path, **settings: Any) -> TestClient:
    config = QueryServerSettings(
        database_url=f"chdb://{data_dir}?database=shop",
        max_rows=5,
        tables_deny=["shop.secrets"],
        **settings,
    )
    return TestClient(create_app(config))


@pytest.fixture(scope="module")
def client(data_dir: Path) -> Iterator[TestClient]:
    with server(data_dir) as c:
        yield c


def test_a_select_is_answered_capped_at_max_rows(client: TestClient) -> None:
    response = client.post("/v1/sql", json={"sql": "SELECT id, total FROM orders ORDER BY id"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["name"] for c in body["columns"]] == ["id", "total"]
    assert [row[0] for row in body["rows"]] == [0, 1, 2, 3, 4]
    assert body["truncated"] is True
    assert "LIMIT 6" in body["sql"]


def test_an_aggregate_over_a_join(client: TestClient) -> None:
    sql = (
        "SELECT c.country, count() AS n FROM orders o JOIN customers c ON o.customer_id = c.id"
        " GROUP BY c.country ORDER BY c.country"
    )
    body = client.post("/v1/sql", json={"sql": sql}).json()
    assert body["rows"] == [["DE", 50], ["NL", 50]]
    assert body["truncated"] is False


@pytest.mark.parametrize(
    ("sql", "code", "says"),
    [
        ("INSERT INTO orders VALUES (1, 1, 1)", "refused", "not a query: INSERT"),
        ("SELECT * FROM url('http://example.com/x.csv', CSV)", "refused", "url"),
        ("SELECT 1; SELECT 2", "refused", "one query at a time"),
        ("SELECT token FROM secrets", "table_not_allowed", "shop.secrets"),
        (
            "WITH t AS (SELECT * FROM shop.secrets) SELECT * FROM t",
            "table_not_allowed",
            "shop.secrets",
        ),
    ],
    ids=["insert", "table-function", "two-statements", "denied-table", "denied-in-cte"],
)
def test_refusals_say_why_and_touch_nothing(
    client: TestClient, sql: str, code: str, says: str
) -> None:
    response = client.post("/v1/sql", json={"sql": sql})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == code
    assert says in error["message"]
    assert "hunter2" not in response.text
    count = client.post("/v1/sql", json={"sql": "SELECT count() FROM orders"}).json()
    assert count["rows"] == [[100]]


def test_a_failing_statement_is_a_structured_error(client: TestClient) -> None:
    response = client.post("/v1/sql", json={"sql": "SELECT no_such_column FROM orders"})
    assert response.status_code == 422
    assert set(response.json()["error"]) == {"code", "message"}


def test_the_schema_hides_denied_tables(client: TestClient) -> None:
    catalog = client.get("/v1/schema").json()
    tables = {t["name"] for s in catalog["schemas"] for t in s["tables"]}
    assert {"customers", "orders"} <= tables
    assert "secrets" not in tables
    joins = {(j["from_table"], j["to_table"]) for j in catalog["joins"]}
    assert ("orders", "customers") in joins


def test_metrics_count_requests_and_refusals(client: TestClient) -> None:
    client.post("/v1/sql", json={"sql": "DROP TABLE orders"})
    text = client.get("/metrics").text
    assert 'duet_query_requests_total{endpoint="/v1/sql",outcome="ok"}' in text
    assert 'duet_query_requests_total{endpoint="/v1/sql",outcome="refused"}' in text
    assert "duet_query_blocked_total{" in text
    assert "duet_query_duration_seconds_bucket{" in text
    assert "duet_query_rows_returned_bucket{" in text
    assert client.get("/healthz").json() == {"status": "ok"}


def test_rate_limit_per_client(data_dir: Path) -> None:
    with server(data_dir, requests_per_minute=2) as limited:
        statuses = [limited.get("/v1/schema").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = limited.get("/v1/schema")
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert limited.get("/healthz").status_code == 200, "probes are never limited"


def test_the_limiter_frees_a_slot_a_minute_later() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.retry_after("a") is None
    now[0] = 10
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("a") == 50
    assert limiter.retry_after("b") is None, "per client"
    now[0] = 60
    assert limiter.retry_after("a") is None


def test_duet_query_serve_runs_the_server(tmp_path: Path) -> None:
    """The command a QueryAgent's Deployment runs, configured as the operator renders it."""
    port = free_port()
    env = os.environ | {
        "DUET_QUERY_DATABASE_URL": "chdb://",
        "DUET_QUERY_PORT": str(port),
        "DUET_QUERY_MAX_ROWS": "3",
    }
    log = (tmp_path / "serve.log").open("wb")
    command = [sys.executable, "-m", "duet_operator.cli", "query", "serve", "--host", "127.0.0.1"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{base}/healthz").status_code == 200,
            timeout=60,
            what="duet query serve to listen",
            ignore=(httpx.HTTPError,),
        )
        answer = httpx.post(f"{base}/v1/sql", json={"sql": "SELECT number FROM numbers(10)"})
        assert answer.json()["rows"] == [[0], [1], [2]]
        assert answer.json()["truncated"] is True
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_schema_docs_over_http_and_on_the_command_line(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    served = client.get("/v1/docs")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/plain")
    text = served.text
    assert "```mermaid\nerDiagram" in text
    assert "shop__customers ||--o{ shop__orders" in text
    assert "### shop.orders" in text
    assert "`DE`, `NL`" in text, "sample values of a low-cardinality column"
    assert "secrets" not in text, "the table filter hides it from the docs too"

    out = tmp_path / "schema.md"
    result = CliRunner().invoke(
        app, ["docs", "--database", f"chdb://{data_dir}?database=shop", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert "### shop.secrets" in out.read_text(), "the command line shows what the URL reads"


def test_docs_of_an_unreachable_database_exit_2() -> None:
    result = CliRunner().invoke(app, ["docs", "--database", "postgresql://u:pw@127.0.0.1:1/db"])
    assert result.exit_code == 2
    assert "pw" not in result.stderr


def test_a_question_is_answered_with_its_sql_and_how_it_was_read(client: TestClient) -> None:
    response = client.post("/v1/ask", json={"question": "Number of customers by country"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["engine"] == "builtin"
    assert sorted(map(tuple, body["rows"])) == [("DE", 5), ("NL", 5)]
    assert "GROUP BY" in body["sql"].upper()
    assert "country" in body["explanation"]


def test_a_question_about_a_hidden_table_cannot_be_answered(client: TestClient) -> None:
    response = client.post("/v1/ask", json={"question": "show the secret tokens"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "cannot_answer"
    assert "secret" in error["message"]
    assert "hunter2" not in response.text


def test_duet_ask_on_the_command_line(data_dir: Path, tmp_path: Path) -> None:
    url = f"chdb://{data_dir}?database=shop"
    one = CliRunner().invoke(app, ["ask", "--database", url, "--json", "How many orders?"])
    assert one.exit_code == 0, one.stderr
    assert json.loads(one.stdout)["rows"] == [[100]]

    batch = tmp_path / "questions.jsonl"
    batch.write_text('"How many orders are there?"\n"What is the weather on Mars?"\n')
    many = CliRunner().invoke(app, ["ask", "--database", url, "--batch", str(batch)])
    assert many.exit_code == 0, many.stderr
    first, second = (json.loads(line) for line in many.stdout.splitlines())
    assert (first["rows"], first["error"]) == ([[100]], None)
    assert set(first) == {"question", "sql", "columns", "rows", "error"}
    assert second["sql"] is None
    assert second["error"]

    unanswerable = CliRunner().invoke(app, ["ask", "--database", url, "Weather on Mars?"])
    assert unanswerable.exit_code == 3


def test_the_memorys_patterns_are_served_when_its_database_is_named(
    data_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    with MemoryStore.open(url) as store:
        record_oom_fixed(store)
    with server(data_dir, memory_url=url) as client:
        listed = client.get("/v1/memory/patterns")
        assert listed.status_code == 200
        assert [p["id"] for p in listed.json()["patterns"]] == [PATTERN]
        assert client.get(f"/v1/memory/patterns/{PATTERN}").json()["evidence"]
    # Without one, there is no such endpoint, and the server's own still answer.
    with server(data_dir) as client:
        assert client.get("/v1/memory/patterns").status_code == 404
        assert client.get("/healthz").status_code == 200
