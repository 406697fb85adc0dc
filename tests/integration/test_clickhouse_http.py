"""ClickHouse hosts on chDB behind the HTTP interface (tests/support/clickhouse_http.py),
driven by the clients the operator uses: clickhouse-connect's HTTP client, the schema sync
and the query engines.

Two hosts serve the whole module, each with its own data directory and macros; tests keep
to databases of their own. Raw HTTP requests check what the client cannot show (statuses,
headers, compression).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import gzip
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
from backports import zstd
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from duet_agents.clickhouse.sync import read_host, sync_host
from duet_agents.query.engines import Limits, QueryDeniedError, QueryFailedError, connect
from tests.integration.test_schema_sync import SCHEMA, user_tables
from tests.support.clickhouse_http import REPO, ClickHouseHost, clickhouse_hosts
from tests.support.wait import wait_until

pytest.importorskip("chdb")

MACROS = [{"shard": "01", "replica": "a"}, {"shard": "01", "replica": "b"}]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClickHouseHost]]:
    with clickhouse_hosts(tmp_path_factory.mktemp("ch-http"), 2, macros=MACROS) as started:
        yield started


@pytest.fixture(scope="module")
def clients(hosts: list[ClickHouseHost]) -> Iterator[list[Client]]:
    made = [host.client() for host in hosts]
    yield made
    for client in made:
        client.close()


def post(
    host: ClickHouseHost,
    sql: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    *,
    login: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    """A raw request: status, headers, body (as sent, not decompressed)."""
    request = urllib.request.Request(
        f"http://{host.host}:{host.port}/?{urlencode(params or {})}",
        data=sql.encode(),
        headers=(
            {"X-ClickHouse-User": host.user, "X-ClickHouse-Key": host.password} if login else {}
        )
        | (headers or {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_each_host_keeps_its_own_data_and_macros(
    hosts: list[ClickHouseHost], clients: list[Client]
) -> None:
    a, b = clients
    a.command("CREATE DATABASE alone")
    a.command("CREATE TABLE alone.t (k UInt64) ENGINE = MergeTree ORDER BY k")
    a.command("INSERT INTO alone.t VALUES (1), (2)")
    b.command("CREATE DATABASE alone")
    b.command("CREATE TABLE alone.t (k UInt64) ENGINE = MergeTree ORDER BY k")
    b.command("INSERT INTO alone.t VALUES (10)")

    assert a.query("SELECT sum(k) FROM alone.t").result_rows == [(3,)]
    assert b.query("SELECT sum(k) FROM alone.t").result_rows == [(10,)]
    a.command("CREATE TABLE alone.only_a (k UInt64) ENGINE = Memory")
    assert b.command("EXISTS TABLE alone.only_a") == 0
    assert a.command("EXISTS TABLE alone.only_a") == 1
    assert (hosts[0].data_dir / "metadata" / "alone").exists()
    assert hosts[0].data_dir != hosts[1].data_dir

    for client, macros in zip(clients, MACROS, strict=True):
        rows = client.query("SELECT macro, substitution FROM system.macros").result_rows
        assert {macro: value for macro, value in rows} == macros
        assert client.command("SELECT getMacro('replica')") == macros["replica"]


def test_queries_commands_and_inserts_through_clickhouse_connect(
    hosts: list[ClickHouseHost], clients: list[Client]
) -> None:
    client = clients[0]
    client.command("CREATE DATABASE kinds")
    client.command(
        """CREATE TABLE kinds.t (id UInt64, name LowCardinality(String), price Decimal(10, 2),
           note Nullable(String), tags Array(String), at DateTime) ENGINE = MergeTree ORDER BY id"""
    )
    client.command(
        "INSERT INTO kinds.t VALUES (1, 'one', 1.50, NULL, ['x'], '2025-01-02 03:04:05')"
    )
    # Native over HTTP, lz4-compressed by default.
    client.insert(
        "kinds.t",
        [
            [2, "two", Decimal("2.25"), "n", ["y", "z"], datetime.datetime(2025, 2, 1)],
            [3, "three", Decimal("0.10"), None, [], datetime.datetime(2025, 3, 1, 12)],
        ],
        column_names=["id", "name", "price", "note", "tags", "at"],
    )

    rows = client.query("SELECT * FROM kinds.t ORDER BY id").result_rows
    assert rows == [
        (1, "one", Decimal("1.50"), None, ["x"], datetime.datetime(2025, 1, 2, 3, 4, 5)),
        (2, "two", Decimal("2.25"), "n", ["y", "z"], datetime.datetime(2025, 2, 1)),
        (3, "three", Decimal("0.10"), None, [], datetime.datetime(2025, 3, 1, 12)),
    ]
    assert client.command("SELECT count() FROM kinds.t") == 3
    assert client.command("SELECT name, id FROM kinds.t WHERE id = 2") == ["two", "2"]
    assert client.command("SELECT name FROM kinds.t WHERE id = 99") == ""

    bound = client.query(
        "SELECT id FROM kinds.t WHERE id IN {ids:Array(UInt64)} AND name != {skip:String}"
        " ORDER BY id",
        parameters={"ids": [1, 2, 3], "skip": "it's not"},
    )
    assert bound.result_rows == [(1,), (2,), (3,)]

    # Large bound values travel as a multipart form; this client always sends one.
    formed = hosts[0].client(form_encode_query_params=True)
    try:
        found = formed.query(
            "SELECT count() FROM kinds.t WHERE name IN {n:Array(String)}",
            parameters={"n": ["one", "two", "x" * 10_000]},
        )
        assert found.result_rows == [(2,)]
    finally:
        formed.close()

    in_kinds = hosts[0].client(database="kinds")
    try:
        assert in_kinds.query("SELECT count() FROM t").result_rows == [(3,)]
        assert in_kinds.command("SELECT currentDatabase()") == "kinds"
    finally:
        in_kinds.close()
    assert client.command("SELECT currentDatabase()") == "default"


def test_inserts_of_text_formats_read_the_data_after_the_statement(clients: list[Client]) -> None:
    client = clients[0]
    client.command("CREATE DATABASE texts")
    client.command("CREATE TABLE texts.t (k UInt64, v String) ENGINE = MergeTree ORDER BY k")
    # The statement in the URL, the data in the body, as ClickHouse's HTTP interface takes it.
    client.command("INSERT INTO texts.t FORMAT CSV", data='1,"a, FORMAT b"\n2,b\n')
    client.command(
        "INSERT INTO texts.t (k, v) SETTINGS input_format_skip_unknown_fields = 1"
        " FORMAT JSONEachRow",
        data='{"k": 3, "v": "c", "extra": 0}\n',
    )
    client.raw_insert("texts.t", ["k", "v"], "4\td\n", fmt="TabSeparated")
    client.command("INSERT INTO texts.t VALUES (5, 'FORMAT CSV\n6,x')")

    rows = client.query("SELECT k, v FROM texts.t ORDER BY k").result_rows
    assert rows == [(1, "a, FORMAT b"), (2, "b"), (3, "c"), (4, "d"), (5, "FORMAT CSV\n6,x")]


def test_settings_hold_for_their_request_only(clients: list[Client]) -> None:
    client = clients[0]
    client.command("CREATE DATABASE scoped")
    client.command("CREATE TABLE scoped.t (k UInt64) ENGINE = MergeTree ORDER BY k")

    assert client.command("SELECT getSetting('max_threads')", settings={"max_threads": 3}) == 3
    assert client.command("SELECT getSetting('max_threads')") != 3
    capped = client.query(
        "SELECT number FROM system.numbers LIMIT 100",
        settings={"max_result_rows": 5, "result_overflow_mode": "break", "max_block_size": 5},
    )
    assert 5 <= len(capped.result_rows) < 100

    with pytest.raises(DatabaseError) as refused:
        client.command("INSERT INTO scoped.t VALUES (1)", settings={"readonly": 1})
    assert refused.value.code == 164  # READONLY
    with pytest.raises(DatabaseError) as locked:
        client.command("SET max_threads = 1", settings={"readonly": 1})
    assert locked.value.code == 164, "readonly=1 holds like a profile's: no SET either"
    client.command("INSERT INTO scoped.t VALUES (2)")
    assert client.query("SELECT k FROM scoped.t").result_rows == [(2,)]


def test_failures_carry_clickhouse_codes_and_statuses(
    hosts: list[ClickHouseHost], clients: list[Client]
) -> None:
    client = clients[0]
    cases = [
        ("SELECT * FROM no_such_table", {}, 60, "UNKNOWN_TABLE"),
        ("SELEKT 1", {}, 62, "SYNTAX_ERROR"),
        ("SELECT 1", {"no_such_setting": 1}, 115, "UNKNOWN_SETTING"),
        ("SELECT throwIf(1, 'boom')", {}, 395, "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO"),
    ]
    for sql, settings, code, name in cases:
        with pytest.raises(DatabaseError) as raised:
            client.query(sql, settings=settings)
        assert raised.value.code == code, raised.value
        assert name in str(raised.value)
    with pytest.raises(DatabaseError) as unknown_db:
        hosts[0].client(database="no_such_db").query("SELECT 1")
    assert unknown_db.value.code == 81  # UNKNOWN_DATABASE

    status, headers, body = post(hosts[0], "SELECT * FROM no_such_table")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")
    assert body.startswith(b"Code: 60. DB::Exception: ")
    status, headers, _ = post(hosts[0], "SELECT throwIf(1)")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "395")


def test_only_the_hosts_user_gets_in(hosts: list[ClickHouseHost]) -> None:
    host = hosts[0]
    with pytest.raises(DatabaseError) as wrong:
        dataclasses.replace(host, password="wrong").client()
    assert wrong.value.code == 516
    assert host.password not in repr(host)
    assert "wrong" not in str(wrong.value)

    status, headers, body = post(host, "SELECT 1", login=False)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    assert b"AUTHENTICATION_FAILED" in body
    params = {"user": host.user, "password": host.password}
    assert post(host, "SELECT 1", params, login=False)[::2] == (200, b"1\n")
    other = hosts[1]
    assert (
        post(host, "SELECT 1", {"user": other.user, "password": other.password}, login=False)[0]
        == 403
    )
    with urllib.request.urlopen(f"http://{host.host}:{host.port}/ping", timeout=10) as ping:
        assert ping.read() == b"Ok.\n"


def test_compression_is_negotiated_as_a_server_does(
    hosts: list[ClickHouseHost], clients: list[Client]
) -> None:
    sql = "SELECT number FROM numbers(3)"
    compressed = {"enable_http_compression": "1"}
    cases: list[tuple[str, str, Callable[[bytes], bytes]]] = [
        ("br, gzip", "gzip", gzip.decompress),
        ("deflate", "deflate", zlib.decompress),
        ("gzip;q=0, zstd", "zstd", zstd.decompress),
    ]
    for accepted, chosen, unpack in cases:
        status, headers, body = post(hosts[0], sql, compressed, {"Accept-Encoding": accepted})
        assert (status, headers.get("Content-Encoding")) == (200, chosen)
        assert unpack(body) == b"0\n1\n2\n"
    # Without the setting a server answers plainly, whatever the client accepts.
    _, headers, body = post(hosts[0], sql, {}, {"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in headers
    assert body == b"0\n1\n2\n"
    _, headers, body = post(hosts[0], sql, compressed, {"Accept-Encoding": "br"})
    assert "Content-Encoding" not in headers

    clients[0].command("CREATE DATABASE packed")
    clients[0].command("CREATE TABLE packed.t (k UInt64, v String) ENGINE = Memory")
    for method in ("lz4", "zstd", "gzip", False):  # what the client can compress with
        client = hosts[0].client(compress=method)
        try:
            client.insert("packed.t", [[1, "v" * 1000]] * 50, column_names=["k", "v"])
            assert client.query("SELECT count() FROM packed.t").result_rows[0][0] % 50 == 0
        finally:
            client.close()
    assert clients[0].command("SELECT count() FROM packed.t") == 200


def test_a_schema_replays_from_one_host_to_another_over_http(clients: list[Client]) -> None:
    source, target = clients
    for statement in SCHEMA:
        source.command(statement)
    schema = asyncio.run(read_host(source))
    assert schema.macros == MACROS[0]

    report = asyncio.run(sync_host(source, target))

    assert report.diff.in_sync, report.diff.message()
    assert report.executed == len(report.plan.statements) > 0
    assert user_tables(target) == user_tables(source)
    target.command("INSERT INTO sales.events VALUES (3, now(), 1), (3, now(), 2)")
    assert target.query("SELECT sum(amount) FROM sales.totals WHERE id = 3").result_rows == [(3.0,)]
    assert source.query("SELECT count() FROM sales.totals WHERE id = 3").result_rows == [(0,)]
    again = asyncio.run(sync_host(source, target))
    assert again.diff.in_sync


def test_the_query_engine_reads_a_host_by_its_url(
    hosts: list[ClickHouseHost], clients: list[Client]
) -> None:
    clients[0].command("CREATE DATABASE asked")
    clients[0].command("CREATE TABLE asked.n (k UInt64) ENGINE = MergeTree ORDER BY k")
    clients[0].command("INSERT INTO asked.n SELECT number FROM numbers(10)")

    with connect(hosts[0].clickhouse_url("asked"), limits=Limits(max_rows=3)) as engine:
        result = engine.execute("SELECT k FROM n ORDER BY k")
        assert result.rows == [(0,), (1,), (2,)]
        assert result.truncated
        assert [c.name for c in result.columns] == ["k"]
        catalog = engine.introspect()
        assert catalog.database == "asked"
        assert catalog.table("asked", "n") is not None
        # The engine's readonly=1 travels as a URL setting and the host enforces it.
        with pytest.raises(QueryDeniedError):
            engine.execute("INSERT INTO n VALUES (99)")
        with pytest.raises(QueryFailedError):
            engine.execute("SELECT * FROM missing")
    assert clients[0].command("SELECT count() FROM asked.n") == 10


def test_a_host_goes_when_the_process_that_started_it_dies(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from tests.support.clickhouse_http import clickhouse_hosts
        with clickhouse_hosts(Path({str(tmp_path)!r}), 1) as hosts:
            print(hosts[0].process.pid, flush=True)
            time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        assert _alive(server_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        wait_until(lambda: not _alive(server_pid), timeout=30, what="the orphaned host to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _alive(pid: int) -> bool:
    """Running, not exited (a zombie waiting for init to reap it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
