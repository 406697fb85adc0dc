"""`duet memory list|show|forget|export|import` and `GET /v1/memory/patterns`, over a real
SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from duet_agents.memory import MemoryStore
from duet_agents.memory.api import memory_router
from duet_operator.memory_command import memory_app
from tests.unit.test_memory_store import FIXED, PATTERN, record_oom_fixed


def duet() -> typer.Typer:
    """A `duet` with only the `memory` group, mounted as cli.py will mount it."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """duet"""

    app.add_typer(memory_app, name="memory")
    return app


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    with MemoryStore.open(url) as store:
        record_oom_fixed(store)
    return url


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(duet(), ["memory", *args])
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_the_pattern_and_its_record(url: str) -> None:
    code, out, _ = run("list", "--url", url)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == [
        "PATTERN",
        "PLATFORMS",
        "VERIFIED",
        "FAILED",
        "PENDING",
        "FACTOR",
        "LAST",
        "SEEN",
    ]
    assert row.split()[:6] == [PATTERN, "1", "1", "0", "0", "x1.5"]
    code, out, _ = run("list", "--url", url, "-o", "json")
    assert [p["id"] for p in json.loads(out)["patterns"]] == [PATTERN]


def test_the_url_comes_from_the_operators_setting(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUET_MEMORY__URL", url)
    code, out, _ = run("list", "-o", "yaml")
    assert code == 0
    assert yaml.safe_load(out)["patterns"][0]["id"] == PATTERN


def test_show_gives_the_evidence(url: str) -> None:
    code, out, _ = run("show", PATTERN, "--url", url)
    assert code == 0
    shown = yaml.safe_load(out)
    assert [e["platform"] for e in shown["evidence"]] == [FIXED]
    assert shown["evidence"][0]["phase"] == "Verified"
    assert run("show", "OOMKilled/keeper/raiseMemory", "--url", url)[0] == 1
    code, _, err = run("show", "nonsense", "--url", url)
    assert code == 2
    assert "not a pattern" in err


def test_forget_removes_the_pattern(url: str) -> None:
    code, out, _ = run("forget", PATTERN, "--url", url)
    assert (code, out.strip()) == (0, f"forgot {PATTERN}: 1 remediation")
    assert run("list", "--url", url)[1].splitlines()[1:] == []
    code, _, err = run("forget", PATTERN, "--url", url)
    assert code == 1
    assert "no pattern" in err


def test_export_then_import_elsewhere(url: str, tmp_path: Path) -> None:
    exported = tmp_path / "lessons.yaml"
    assert run("export", "--url", url, "-f", str(exported))[0] == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, out, _ = run("import", str(exported), "--url", other)
    assert (code, out.strip()) == (0, f"imported 1 remediation from {exported}")
    assert run("import", str(exported), "--url", other)[1].strip().startswith("imported 0 ")
    assert run("export", "--url", other)[1] == exported.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: something/else\npatterns: []\n")
    code, _, err = run("import", str(bad), "--url", other)
    assert code == 2
    assert "apiVersion" in err


def test_a_store_that_cannot_be_opened_is_said_without_the_password() -> None:
    code, _, err = run("list", "--url", "postgresql://duet:pw-s3cret@127.0.0.1:9/memory")
    assert code == 1
    assert "cannot open the memory store" in err
    assert "pw-s3cret" not in err


def test_the_api_lists_and_shows_patterns(url: str) -> None:
    app = FastAPI()
    with MemoryStore.open(url) as store:
        app.include_router(memory_router(lambda: store))
        client = TestClient(app)
        listed = client.get("/v1/memory/patterns")
        assert listed.status_code == 200
        [pattern] = listed.json()["patterns"]
        assert (pattern["id"], pattern["verified"], pattern["factor"]) == (PATTERN, 1, "1.50")
        shown = client.get(f"/v1/memory/patterns/{PATTERN}")
        assert shown.status_code == 200
        assert shown.json()["evidence"][0]["platform"] == FIXED
        missing = client.get("/v1/memory/patterns/OOMKilled/keeper/raiseMemory")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        assert client.get("/v1/memory/patterns/Nonsense/x/y").status_code == 404
