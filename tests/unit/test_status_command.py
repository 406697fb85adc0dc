"""`kubectl duet status` output, and the plugin's pure parts: which QueryAgent `ask` goes to,
how its answer and errors read, and the plugin's commands offline. The cluster side is in
tests/integration/test_kubectl_plugin.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from duet_operator.cli import app as duet_app
from duet_operator.cluster_commands import CommandError
from duet_operator.kubectl_plugin import (
    app,
    backup_object,
    error_message,
    proxy_path,
    render_answer,
    resolve_agent,
)
from duet_operator.models import DataPlatform, QueryAgent, Remediation
from duet_operator.models.backup import BackupComponent, BackupDeletionPolicy
from duet_operator.status_command import (
    PlatformStatus,
    age,
    columns,
    recent,
    render_json,
    render_text,
)
from tests.support.platforms import design, platform

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def ready_platform() -> DataPlatform:
    base = platform("web", "shop")
    status = {
        "phase": "Ready",
        "observedGeneration": 3,
        "design": design(shards=2, replicas=2).wire(),
        "endpoints": {
            "clickhouseHTTP": "http://web-clickhouse.shop.svc.cluster.local:8123",
            "postgresReadWrite": "postgresql://web-postgres-rw.shop.svc.cluster.local:5432",
        },
        "planner": {"provider": "builtin"},
        "conditions": [
            {
                "type": "Planned", "status": "True", "reason": "Designed",
                "message": "2 shards x 2 replicas", "lastTransitionTime": NOW - timedelta(hours=3),
            },
            {
                "type": "Ready", "status": "True", "reason": "AllReplicasReady",
                "lastTransitionTime": NOW - timedelta(minutes=12),
            },
        ],
    }  # fmt: skip
    return base.model_copy(
        update={
            "metadata": base.metadata.model_copy(update={"generation": 3}),
            "status": type(base.status).model_validate(status),
        }
    )


def remediation(name: str, platform_name: str, minutes_ago: int, **extra: Any) -> Remediation:
    return Remediation.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": "shop",
                "creationTimestamp": NOW - timedelta(minutes=minutes_ago),
            },
            "spec": {
                "platformRef": {"name": platform_name},
                "symptom": {"type": "OOMKilled", "object": "pod/web-clickhouse-0-1"},
                "diagnosis": "the server ran out of memory",
                "action": {
                    "type": "raiseMemory",
                    "parameters": {"target": "statefulset/web-clickhouse-0"},
                },
                "mode": "recommend",
            }
            | extra.get("spec", {}),
            "status": extra.get("status", {"phase": "Pending"}),
        }
    )


def agent(name: str, platform_name: str, phase: str | None = None) -> QueryAgent:
    return QueryAgent.model_validate(
        {
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"platformRef": {"name": platform_name}},
            "status": {"phase": phase} if phase else {},
        }
    )


# -- status ------------------------------------------------------------------------------


def test_the_text_shows_design_conditions_endpoints_and_remediations() -> None:
    rems = [
        remediation("web-oom-1", "web", 30, status={"phase": "Verified"}),
        remediation("web-oom-2", "web", 2, spec={"approved": True}),
    ]
    text = render_text(
        PlatformStatus(platform=ready_platform(), remediations=recent(rems, "web", 5)), NOW
    )
    lines = text.splitlines()
    assert lines[:5] == [
        "Platform:    web",
        "Namespace:   shop",
        "Phase:       Ready",
        "Generation:  3 (observed 3)",
        "Planner:     builtin",
    ]
    assert "  ClickHouse   25.8      2 shard(s) x 2 replica(s)   4 CPU, 16Gi   1400Gi" in lines
    assert "  Keeper                 3 replica(s)                1 CPU, 2Gi    10Gi" in lines
    assert "  Estimated cost: $1,234.50 a month" in lines
    conditions = lines[lines.index("Conditions") + 1 :]
    assert conditions[0].split() == ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]
    assert conditions[1].split()[:4] == ["Planned", "True", "Designed", "3h"]
    assert conditions[1].endswith("   2 shards x 2 replicas")
    assert conditions[2].split() == ["Ready", "True", "AllReplicasReady", "12m"]
    assert "  clickhouseHTTP      http://web-clickhouse.shop.svc.cluster.local:8123" in lines
    recent_rows = lines[lines.index("Recent remediations") + 1 :]
    assert [row.split()[0] for row in recent_rows] == ["NAME", "web-oom-2", "web-oom-1"]
    assert recent_rows[1].split() == [
        "web-oom-2", "Pending", "raiseMemory", "statefulset/web-clickhouse-0",
        "OOMKilled", "recommend", "(approved)", "2m",
    ]  # fmt: skip


def test_a_platform_just_applied_says_what_it_lacks_rather_than_failing() -> None:
    fresh = platform("new", "shop")
    text = render_text(PlatformStatus(platform=fresh, remediations=[]), NOW)
    assert "Phase:       Unknown" in text
    assert "Design\n  not planned yet" in text
    assert "Conditions\n  none reported yet" in text
    assert "Endpoints\n  none yet" in text
    assert "Recent remediations\n  none" in text


def test_the_json_carries_the_status_as_the_api_has_it() -> None:
    found = render_json(
        PlatformStatus(platform=ready_platform(), remediations=[remediation("web-oom-2", "web", 2)])
    )
    assert json.loads(json.dumps(found)) == found, "plain JSON"
    assert found["name"] == "web"
    assert found["status"]["phase"] == "Ready"
    assert found["status"]["design"]["clickhouse"]["shards"] == 2
    assert found["status"]["endpoints"]["clickhouseHTTP"].endswith(":8123")
    assert [c["type"] for c in found["status"]["conditions"]] == ["Planned", "Ready"]
    assert found["remediations"] == [
        {
            "name": "web-oom-2",
            "phase": "Pending",
            "action": {
                "type": "raiseMemory",
                "parameters": {"target": "statefulset/web-clickhouse-0"},
            },
            "symptom": "OOMKilled",
            "object": "pod/web-clickhouse-0-1",
            "mode": "recommend",
            "approved": False,
            "created": "2025-06-01T11:58:00+00:00",
        }
    ]


def test_only_the_platforms_latest_remediations_are_shown() -> None:
    rems = [remediation(f"web-{i}", "web", i) for i in range(8)]
    rems.append(remediation("other-1", "other", 0))
    assert [r.metadata.name for r in recent(rems, "web", 3)] == ["web-0", "web-1", "web-2"]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(5, "5s"), (59, "59s"), (60, "1m"), (3599, "59m"), (7200, "2h"), (3 * 86400 + 5, "3d")],
)
def test_ages_read_as_kubectl_prints_them(seconds: int, shown: str) -> None:
    assert age(NOW - timedelta(seconds=seconds), NOW) == shown
    assert age(None, NOW) == "-"


def test_columns_are_as_wide_as_their_widest_cell() -> None:
    assert columns(["A", "LONGER"], [["xyz", "1"], ["", "22"]]) == (
        "  A     LONGER\n  xyz   1\n        22"
    )


# -- ask ---------------------------------------------------------------------------------


def test_ask_goes_to_the_agent_named_or_else_to_a_ready_one_serving_the_platform() -> None:
    agents = [
        agent("b-pending", "web"),
        agent("c-ready", "web", "Ready"),
        agent("a-ready", "web", "Ready"),
        agent("web", "other"),
    ]
    assert resolve_agent("web", agents, "shop").metadata.name == "web"
    assert resolve_agent("c-ready", agents, "shop").metadata.name == "c-ready"
    assert resolve_agent("web", agents[:3], "shop").metadata.name == "a-ready"
    assert resolve_agent("web", agents[:1], "shop").metadata.name == "b-pending"


def test_ask_without_an_agent_says_what_to_apply() -> None:
    with pytest.raises(CommandError) as raised:
        resolve_agent("web", [agent("x", "other")], "shop")
    assert raised.value.code == 2
    assert "spec.platformRef.name: web" in str(raised.value)


def test_the_question_goes_through_the_api_servers_service_proxy() -> None:
    assert proxy_path(agent("ask", "web"), "shop", "v1/ask") == (
        "/api/v1/namespaces/shop/services/ask-query:8080/proxy/v1/ask"
    )


def test_an_answer_reads_as_duet_ask_prints_it() -> None:
    answer = {
        "explanation": "count of orders",
        "sql": "SELECT count() FROM shop.orders",
        "columns": [{"name": "count()", "type": "UInt64"}],
        "rows": [[42]],
    }
    assert render_answer("ask", answer) == (
        "-- ask: count of orders\nSELECT count() FROM shop.orders\n\ncount()\n42\n"
    )


def test_errors_from_the_agent_and_from_the_proxy_read_as_one_line() -> None:
    agent_error = json.dumps({"error": {"code": "refused", "message": "writes are not allowed"}})
    assert error_message(403, agent_error) == "writes are not allowed"
    api_status = json.dumps({"kind": "Status", "message": 'services "x" not found'})
    assert error_message(404, api_status) == 'services "x" not found'
    assert error_message(503, "no endpoints available\n") == "HTTP 503: no endpoints available"


def test_a_backup_is_named_for_when_it_was_asked_for() -> None:
    made = backup_object("web", NOW)
    assert made.metadata.name == "web-20250601120000"
    assert made.wire()["spec"] == {
        "platformRef": {"name": "web"},
        "components": ["clickhouse", "postgres"],
        # Said explicitly, as the API server would default it: the data stays with the target.
        "deletionPolicy": "Retain",
    }
    only = backup_object("web", NOW, [BackupComponent.POSTGRES, BackupComponent.POSTGRES])
    assert only.wire()["spec"]["components"] == ["postgres"]
    deleting = backup_object("web", NOW, (), BackupDeletionPolicy.DELETE)
    assert deleting.wire()["spec"]["deletionPolicy"] == "Delete"


def test_backup_takes_the_deletion_policy_by_its_name_and_refuses_others() -> None:
    helped = CliRunner().invoke(app, ["backup", "--help"])
    assert "--deletion-policy" in helped.stdout
    wrong = CliRunner().invoke(app, ["backup", "web", "--deletion-policy", "Purge"])
    assert wrong.exit_code == 2


# -- the plugin's commands ---------------------------------------------------------------


def test_the_plugin_offers_the_commands_kubectl_users_expect() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("status", "approve", "backup", "plan", "ask"):
        assert command in result.stdout


def test_plan_is_duets_own(tmp_path: Path) -> None:
    example = str(REPO / "manifests" / "examples" / "dataplatform-small.yaml")
    runner = CliRunner()
    ours = runner.invoke(app, ["plan", "-f", example, "-o", "json"])
    theirs = runner.invoke(duet_app, ["plan", "-f", example, "-o", "json"])
    assert ours.exit_code == 0, ours.output
    assert ours.stdout == theirs.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: DataPlatform\nmetadata: {name: x}\nspec: {requirements: {dataVolume: lots}}\n"
    )
    refused = runner.invoke(app, ["plan", "-f", str(bad)])
    assert refused.exit_code == 2
    assert "dataVolume" in refused.stderr
