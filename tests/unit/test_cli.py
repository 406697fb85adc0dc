"""`duet plan` and `duet render` keep the command line contract of DESIGN.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from duet_agents.planner import capacity, prompts
from duet_agents.planner.policy import as_proposal
from duet_operator.cli import app
from duet_operator.manifests import load_platform
from tests.support.llm_servers import (
    BackgroundLLMServer,
    Scripted,
    openai_error,
    openai_tool_call,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "manifests" / "examples" / "dataplatform.yaml"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "platform.yaml"
    path.write_text(
        "apiVersion: duet.aidatalabs.ai/v1alpha1\nkind: DataPlatform\n"
        f"metadata: {{name: p}}\nspec:\n{spec}"
    )
    return path


def test_plan_prints_the_design_as_json_with_the_documented_fields(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "-f", str(EXAMPLE), "-o", "json"])
    assert result.exit_code == 0, result.output
    design = json.loads(result.stdout)
    assert set(design) == {
        "clickhouse",
        "postgres",
        "estimatedMonthlyCostUSD",
        "rationale",
        "planner",
    }
    assert set(design["clickhouse"]) == {
        "version",
        "shards",
        "replicas",
        "resources",
        "storage",
        "keeper",
    }
    assert design["clickhouse"]["replicas"] == 2
    assert design["planner"] == {"provider": "builtin"}
    assert design["estimatedMonthlyCostUSD"] > 0


def test_plan_prints_yaml_by_default(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "-f", str(EXAMPLE)])
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["clickhouse"]["shards"] >= 1


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            "  requirements: {dataVolume: 1Ti, availability: gold}\n",
            "spec.requirements.availability",
        ),
        ("  requirements: {}\n", "spec.requirements.dataVolume"),
        ("  requirements: {dataVolume: 1Ti}\n  deletionPolicy: Shred\n", "spec.deletionPolicy"),
        ("  requirements: {dataVolume: 1Ti}\n  surprise: 1\n", "spec.surprise"),
    ],
)
def test_invalid_input_exits_2_naming_the_field(
    runner: CliRunner, tmp_path: Path, spec: str, field: str
) -> None:
    result = runner.invoke(app, ["plan", "-f", str(write(tmp_path, spec))])
    assert result.exit_code == 2
    assert field in result.stderr
    assert result.stdout == ""


def test_unreadable_and_foreign_files_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["plan", "-f", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    other = tmp_path / "cm.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    foreign = runner.invoke(app, ["plan", "-f", str(other)])
    assert foreign.exit_code == 2
    assert "no document of kind DataPlatform" in foreign.stderr


def test_a_budget_below_the_cheapest_design_exits_1_with_the_minimum(
    runner: CliRunner, tmp_path: Path
) -> None:
    spec = "  requirements: {dataVolume: 6Ti, availability: high}\n  budget: {monthlyUSD: 100}\n"
    result = runner.invoke(app, ["plan", "-f", str(write(tmp_path, spec))])
    assert result.exit_code == 1
    assert "spec.budget.monthlyUSD to at least" in result.stderr


def model_answer() -> dict[str, Any]:
    platform = load_platform(EXAMPLE)
    answer = as_proposal(capacity.plan(platform.spec.plan_request())).wire()
    answer["rationale"] = ["three shards for 6Ti"]
    return answer


def test_a_model_planner_answers_through_the_openai_sdk(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = openai_tool_call(
        prompts.TOOL_NAME, model_answer(), prompt_tokens=9, completion_tokens=1
    )
    with BackgroundLLMServer([Scripted(reply)]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-cli")
        result = runner.invoke(
            app, ["plan", "-f", str(EXAMPLE), "--planner", "openai", "-o", "json"]
        )
        (request,) = server.received
    assert result.exit_code == 0, result.stderr
    design = json.loads(result.stdout)
    assert design["planner"] == {"provider": "openai", "model": "gpt-4.1"}
    assert design["rationale"][0] == "three shards for 6Ti"
    assert request.headers["authorization"] == "Bearer sk-cli"


def test_a_failing_model_planner_says_so_and_prints_the_built_in_design(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Scripted(openai_error("down"), status=500, headers={"x-should-retry": "false"})
    with BackgroundLLMServer([broken] * 3) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-cli")
        result = runner.invoke(
            app, ["plan", "-f", str(EXAMPLE), "--planner", "openai", "-o", "json"]
        )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["planner"] == {"provider": "builtin"}
    assert "the openai model gpt-4.1 was not used" in result.stderr
    assert "sk-cli" not in result.stderr


def test_render_prints_manifests_without_owner_references(runner: CliRunner) -> None:
    result = runner.invoke(app, ["render", "-f", str(EXAMPLE)])
    assert result.exit_code == 0, result.stderr
    manifests = list(yaml.safe_load_all(result.stdout))
    kinds = {m["kind"] for m in manifests}
    assert kinds == {"Secret", "ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"}
    assert all("ownerReferences" not in m["metadata"] for m in manifests)
    assert {m["metadata"]["namespace"] for m in manifests} == {"default"}
    # Fresh credentials each run.
    again = list(yaml.safe_load_all(runner.invoke(app, ["render", "-f", str(EXAMPLE)]).stdout))
    first = next(m for m in manifests if m["kind"] == "Secret")["stringData"]["admin-password"]
    second = next(m for m in again if m["kind"] == "Secret")["stringData"]["admin-password"]
    assert first != second


def test_sql_check_is_a_duet_command(runner: CliRunner) -> None:
    allowed = runner.invoke(app, ["sql", "check", "--dialect", "postgres", "select 1"])
    assert allowed.exit_code == 0
    blocked = runner.invoke(
        app, ["sql", "check", "--dialect", "clickhouse", "--json", "select * from url('x')"]
    )
    assert blocked.exit_code == 3
    assert json.loads(blocked.stdout)["allowed"] is False
