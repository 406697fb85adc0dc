"""`duet sql check` keeps the command line contract of DESIGN.md: exit 0 allowed, 3 blocked,
2 for usage errors; --json and --batch print `{"allowed": bool, "reason": str|null}`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from duet_operator.sql_command import sql_app


def duet() -> typer.Typer:
    """A `duet` with only the `sql` group, mounted as cli.py mounts it."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """duet"""

    app.add_typer(sql_app, name="sql")
    return app


@pytest.fixture
def app() -> typer.Typer:
    return duet()


def invoke(app: typer.Typer, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["sql", "check", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_an_allowed_statement_exits_0_and_prints_the_sql_to_run(app: typer.Typer) -> None:
    code, out, err = invoke(app, "--dialect", "postgres", "SELECT a FROM t")
    assert (code, out, err) == (0, "SELECT a FROM t LIMIT 1000\n", "")


def test_a_blocked_statement_exits_3_with_the_reason_on_stderr(app: typer.Typer) -> None:
    code, out, err = invoke(app, "--dialect", "postgres", "SELECT pg_read_file('/etc/passwd')")
    assert code == 3
    assert out == ""
    assert "function not allowed: pg_read_file" in err


@pytest.mark.parametrize(
    ("sql", "allowed", "reason", "code"),
    [
        ("SELECT name FROM system.tables", True, None, 0),
        ("SELECT * FROM system.users", False, "catalog not allowed: system.users", 3),
        ("SELECT * FROM url('http://x', CSV)", False, "table function not allowed: url", 3),
        ("SELECT 1; SELECT 2", False, "several statements: 2, one query at a time", 3),
    ],
)
def test_json_prints_the_verdict(
    app: typer.Typer, sql: str, allowed: bool, reason: str | None, code: int
) -> None:
    exit_code, out, _ = invoke(app, "--dialect", "clickhouse", "--json", sql)
    assert exit_code == code
    assert json.loads(out) == {"allowed": allowed, "reason": reason}


def test_max_rows_caps_the_sql_to_run(app: typer.Typer) -> None:
    code, out, _ = invoke(app, "--dialect", "clickhouse", "--max-rows", "5", "SELECT 1 LIMIT 50")
    assert (code, out) == (0, "SELECT 1 LIMIT 5\n")


@pytest.mark.parametrize(
    "args",
    [
        ["--dialect", "postgres"],  # no SQL
        ["SELECT 1"],  # no dialect
        ["--dialect", "mysql", "SELECT 1"],
        ["--dialect", "postgres", "--max-rows", "0", "SELECT 1"],
        ["--dialect", "postgres", "--max-rows", "many", "SELECT 1"],
        ["--dialect", "postgres", "--batch", "-", "SELECT 1"],  # both
        ["--dialect", "postgres", "--no-such-option", "SELECT 1"],
    ],
)
def test_usage_errors_exit_2(app: typer.Typer, args: list[str]) -> None:
    code, _, err = invoke(app, *args)
    assert code == 2
    assert err


def test_batch_prints_one_verdict_per_line_in_order_and_exits_0(
    app: typer.Typer, tmp_path: Path
) -> None:
    batch = write_lines(
        tmp_path,
        json.dumps("SELECT 1"),
        json.dumps("DROP TABLE t"),
        "42",
        "not json at all",
        "",
        json.dumps({"sql": "SELECT 1"}),
        json.dumps("SELECT pg_sleep(10)"),
        json.dumps("SELECT '\u2028'"),  # a line break that str.splitlines() would split on
    )
    code, out, err = invoke(app, "--dialect", "postgres", "--batch", str(batch))
    assert (code, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"allowed": True, "reason": None},
        {"allowed": False, "reason": "not a query: DROP"},
        {"allowed": False, "reason": "not a JSON string: line 3"},
        {"allowed": False, "reason": "not a JSON string: line 4"},
        {"allowed": False, "reason": "not a JSON string: line 5"},
        {"allowed": False, "reason": "not a JSON string: line 6"},
        {"allowed": False, "reason": "function not allowed: pg_sleep"},
        {"allowed": True, "reason": None},
    ]


def test_batch_reads_stdin_with_any_line_ends(app: typer.Typer) -> None:
    stdin = json.dumps("SELECT 1") + "\r\n" + json.dumps("SELECT 2")
    code, out, _ = invoke(app, "--dialect", "clickhouse", "--batch", "-", stdin=stdin)
    assert code == 0
    assert out.splitlines() == ['{"allowed": true, "reason": null}'] * 2


def test_an_empty_batch_prints_nothing(app: typer.Typer, tmp_path: Path) -> None:
    batch = tmp_path / "empty.jsonl"
    batch.write_text("")
    assert invoke(app, "--dialect", "postgres", "--batch", str(batch)) == (0, "", "")


@pytest.mark.parametrize("name", ["missing.jsonl", "."])
def test_an_unreadable_batch_exits_2(app: typer.Typer, tmp_path: Path, name: str) -> None:
    code, out, err = invoke(app, "--dialect", "postgres", "--batch", str(tmp_path / name))
    assert (code, out) == (2, "")
    assert "cannot read" in err


def test_a_batch_that_is_not_utf8_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    batch = tmp_path / "latin1.jsonl"
    batch.write_bytes(b'"SELECT \xe9"\n')
    code, _, err = invoke(app, "--dialect", "postgres", "--batch", str(batch))
    assert code == 2
    assert "cannot read" in err


def test_sql_without_a_command_shows_help(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["sql"])
    assert "check" in result.output
