"""Engine URLs, limits, the settings and error mapping each engine applies, and secrets kept
out of every message (no database needed: connection failures go to closed loopback ports).

The clickhouse-connect HTTP engine cannot run against a server here (no ClickHouse server can
be installed on this machine); its settings policy and error mapping are tested here, and its
execution and introspection path is the one the chDB integration tests run.
"""

from __future__ import annotations

import socket
import traceback

import psycopg
import pytest
import urllib3
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from clickhouse_connect.driver.models import SettingDef
from pydantic import ValidationError

from duet_agents.query.engines import (
    ConnectionFailedError,
    InvalidURLError,
    Limits,
    QueryDeniedError,
    QueryError,
    QueryFailedError,
    QueryTimeoutError,
    connect,
    parse_url,
)
from duet_agents.query.engines.clickhouse import clickhouse_error, limit_settings, query_settings
from duet_agents.query.engines.postgres import postgres_error, session_settings
from duet_agents.query.engines.urls import Scheme
from duet_agents.query.firewall import Category
from duet_agents.query.guarded import QueryRefusedError

SECRET = "S3cret-p@ss/word"
ENCODED = "S3cret-p%40ss%2Fword"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def everything_shown(error: BaseException) -> str:
    """What a log line, a repr or a traceback of the error could show."""
    return str(error) + repr(error) + "".join(traceback.format_exception(error))


# -- parsing --------------------------------------------------------------------------------------


def test_chdb_urls() -> None:
    on_disk = parse_url("chdb:///var/lib/duet/chdb")
    assert (on_disk.scheme, on_disk.path, on_disk.database) == (
        Scheme.CHDB,
        "/var/lib/duet/chdb",
        None,
    )
    in_memory = parse_url("chdb://")
    assert (in_memory.path, in_memory.database) == (None, None)
    with_database = parse_url("chdb:///data?database=shop")
    assert (with_database.path, with_database.database) == ("/data", "shop")
    assert str(with_database) == "chdb:///data"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("chdb://relative/dir", "three slashes"),
        ("chdb:///", "needs a data directory"),
        ("mysql://u:p@host/db", "unsupported database URL"),
        ("clickhouse:///db", "names no host"),
        ("postgresql://host/db/extra", "single database name"),
        ("postgresql://host/db?options=-c%20default_transaction_read_only%3Doff", "options"),
        ("clickhouse://host/db?verify=false", "verify"),
    ],
)
def test_unusable_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message):
        parse_url(url)


def test_server_urls_and_default_ports() -> None:
    ch = parse_url(f"clickhouse://reader:{ENCODED}@ch.example:9000/analytics")
    assert (ch.host, ch.port, ch.user, ch.database) == ("ch.example", 9000, "reader", "analytics")
    assert ch.secret() == SECRET
    assert parse_url("clickhouse://ch").port == 8123
    secure = parse_url("clickhouses://ch/db?ca_cert=/etc/ca.pem&verify=true")
    assert (secure.scheme, secure.port, secure.options) == (
        Scheme.CLICKHOUSES,
        8443,
        {"ca_cert": "/etc/ca.pem", "verify": "true"},
    )
    pg = parse_url("postgres://readonly@pg:6432/app?sslmode=require")
    assert (pg.scheme, pg.port, pg.user, pg.password, pg.options) == (
        Scheme.POSTGRESQL,
        6432,
        "readonly",
        None,
        {"sslmode": "require"},
    )
    assert parse_url("postgresql://pg/app").port == 5432


# -- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["clickhouse", "clickhouses", "postgresql"])
def test_a_parsed_url_never_shows_its_password(scheme: str) -> None:
    url = parse_url(f"{scheme}://reader:{ENCODED}@db.example/app")
    shown_as = [str(url), repr(url), url.redacted(), url.model_dump_json(), str(url.model_dump())]
    for shown in shown_as:
        assert SECRET not in shown
        assert ENCODED not in shown
    assert str(url).startswith(f"{scheme}://reader:***@db.example:")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://reader:{ENCODED}@db.example:notaport/app",
        f"clickhouse://reader:{ENCODED}@db.example/app?nope=1",
        f"oracle://reader:{ENCODED}@db.example/app",
        f"postgresql://reader:{ENCODED}@db.example/a/b",
        f"postgresql://reader:{SECRET}@db.example/app?nope=1",  # not even encoded
    ],
)
def test_url_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(InvalidURLError) as refused:
        parse_url(url)
    shown = everything_shown(refused.value)
    for part in (SECRET, ENCODED, "S3cret", "ss/word", "ss%2Fword"):
        assert part not in shown


@pytest.mark.parametrize("scheme", ["postgresql", "clickhouse"])
def test_connection_errors_never_show_the_password(scheme: str) -> None:
    url = f"{scheme}://reader:{ENCODED}@127.0.0.1:{closed_port()}/app"
    with pytest.raises(ConnectionFailedError) as failed:
        connect(url, limits=Limits(timeout_seconds=2))
    shown = everything_shown(failed.value)
    assert SECRET not in shown
    assert ENCODED not in shown
    assert "reader:***@127.0.0.1" in str(failed.value)


def test_a_missing_chdb_directory_is_named(tmp_path: object) -> None:
    with pytest.raises(InvalidURLError, match="no chDB data directory"):
        connect(f"chdb://{tmp_path}/missing")


# -- limits ---------------------------------------------------------------------------------------


def test_limits_defaults_and_bounds() -> None:
    limits = Limits()
    assert (limits.max_rows, limits.timeout_seconds) == (1000, 30.0)
    for bad in ({"max_rows": 0}, {"timeout_seconds": 0}, {"max_result_bytes": 0}):
        with pytest.raises(ValidationError):
            Limits.model_validate(bad)
    with pytest.raises(ValidationError):
        limits.max_rows = 5  # type: ignore[misc]


def test_postgres_session_settings() -> None:
    assert session_settings(Limits(timeout_seconds=1.5)) == {
        "default_transaction_read_only": "on",
        "statement_timeout": "1500",
        "lock_timeout": "1500",
        "idle_in_transaction_session_timeout": "11500",
    }


# -- ClickHouse settings policy -------------------------------------------------------------------

LIMITS = Limits(max_rows=100, timeout_seconds=7, max_result_bytes=1000)


def server(readonly: str, *, fixed: bool, **values: str) -> dict[str, SettingDef]:
    """system.settings as clickhouse-connect reads it: `fixed` settings the user cannot change."""
    names = ["max_execution_time", "max_result_rows", "max_result_bytes", "result_overflow_mode"]
    settings = {name: SettingDef(name, values.get(name, "0"), int(fixed)) for name in names}
    settings["readonly"] = SettingDef("readonly", readonly, int(fixed))
    return settings


def test_limit_settings_put_readonly_last() -> None:
    assert list(limit_settings(LIMITS).items()) == [
        ("max_execution_time", "7"),
        ("max_result_rows", "101"),
        ("max_result_bytes", "1000"),
        ("result_overflow_mode", "break"),
        ("readonly", "1"),
    ]


def test_a_read_only_profile_gets_no_settings() -> None:
    """Sending any setting to a readonly=1 user would make ClickHouse refuse the query."""
    assert query_settings(LIMITS, server("1", fixed=True)) == {}


def test_a_user_who_may_change_settings_gets_all_of_them_with_readonly() -> None:
    assert query_settings(LIMITS, server("0", fixed=False)) == limit_settings(LIMITS)


def test_readonly_2_keeps_its_own_readonly_and_takes_the_limits() -> None:
    settings = query_settings(LIMITS, server("2", fixed=False))
    assert "readonly" not in settings
    assert settings["max_execution_time"] == "7"


def test_settings_already_in_force_are_not_sent() -> None:
    current = server("0", fixed=False, max_execution_time="7", result_overflow_mode="break")
    assert query_settings(LIMITS, current) == {
        "max_result_rows": "101",
        "max_result_bytes": "1000",
        "readonly": "1",
    }


def test_a_user_who_may_write_but_not_become_read_only_is_refused() -> None:
    with pytest.raises(ConnectionFailedError, match="cannot be switched to readonly=1"):
        query_settings(LIMITS, server("0", fixed=True))


# -- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (159, QueryTimeoutError),
        (394, QueryTimeoutError),
        (164, QueryDeniedError),
        (497, QueryDeniedError),
        (516, ConnectionFailedError),
        (62, QueryFailedError),
        (60, QueryFailedError),
    ],
)
def test_clickhouse_errors_by_code(code: int, expected: type[QueryError]) -> None:
    error = clickhouse_error(DatabaseError(f"Code: {code}. DB::Exception: it failed", code=code))
    assert type(error) is expected
    assert "it failed" in error.message


def test_clickhouse_transport_errors() -> None:
    timed_out = OperationalError("Error executing HTTP request")
    pool = urllib3.HTTPConnectionPool("127.0.0.1")
    timed_out.__cause__ = urllib3.exceptions.ReadTimeoutError(pool, "/", "read timed out")
    assert type(clickhouse_error(timed_out)) is QueryTimeoutError
    assert type(clickhouse_error(OperationalError("refused"))) is ConnectionFailedError


def test_clickhouse_error_messages_are_scrubbed() -> None:
    error = clickhouse_error(DatabaseError(f"bad login {SECRET}", code=516), [SECRET])
    assert SECRET not in str(error)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.errors.QueryCanceled("canceling statement due to timeout"), QueryTimeoutError),
        (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT"), QueryDeniedError),
        (psycopg.errors.InsufficientPrivilege("permission denied for table t"), QueryDeniedError),
        (psycopg.errors.InvalidPassword("password authentication failed"), ConnectionFailedError),
        (psycopg.errors.AdminShutdown("terminating connection"), ConnectionFailedError),
        (psycopg.OperationalError("connection failed"), ConnectionFailedError),
        (psycopg.errors.SyntaxError('syntax error at or near "SELEC"'), QueryFailedError),
        (psycopg.errors.UndefinedTable('relation "nope" does not exist'), QueryFailedError),
    ],
)
def test_postgres_errors_by_sqlstate(error: psycopg.Error, expected: type[QueryError]) -> None:
    mapped = postgres_error(error)
    assert type(mapped) is expected
    assert mapped.code == error.sqlstate
    assert mapped.message == str(error)


def test_a_firewall_refusal_is_a_query_error() -> None:
    refused = QueryRefusedError("writes data: INSERT", Category.WRITES)
    assert isinstance(refused, QueryError)
    assert (refused.reason, refused.category, refused.code) == (
        "writes data: INSERT",
        Category.WRITES,
        "writes data",
    )
