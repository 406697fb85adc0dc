"""Lessons from past remediations, and `apply_lessons` within pins, policy and budget. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from duet_agents.healer import ActionType, Component, DecisionPhase, SymptomType
from duet_agents.memory import Lesson, MemoryPolicy, apply_lessons, derive_lessons, lessons_context
from duet_agents.memory.lessons import Evidence, PastRemediation, Resource, parse_pattern_id
from duet_agents.memory.similarity import Figures, Profile
from duet_agents.planner import capacity
from duet_agents.planner.models import PlanRequest, PriceTable
from duet_agents.planner.policy import PlannerPolicy
from duet_agents.units import GiB, parse_quantity

NOW = datetime(2025, 3, 1, tzinfo=UTC)
HERE = Profile(
    Figures(
        data_bytes=2 * 2**40,
        ingest_rows_per_second=50_000,
        retention_days=90,
        concurrent_queries=10,
        latency_seconds=1.0,
        availability="standard",
    ).coordinates()
)
FAR = Profile((0.0, 0.0, 0.0, 0.0, 0.0, 0.0))


def past(
    platform: str,
    phase: DecisionPhase,
    before: str | None,
    after: str | None,
    *,
    hours: int = 0,
    profile: Profile = HERE,
    action: ActionType = ActionType.RAISE_MEMORY,
    component: Component | None = Component.CLICKHOUSE,
) -> PastRemediation:
    return PastRemediation(
        platform=platform,
        profile=profile,
        symptom=SymptomType.OOM_KILLED
        if action is ActionType.RAISE_MEMORY
        else SymptomType.VOLUME_NEARLY_FULL,
        component=component,
        action=action,
        before=before,
        after=after,
        phase=phase,
        decided_at=NOW + timedelta(hours=hours),
    )


def lesson(
    component: Component = Component.CLICKHOUSE,
    resource: Resource = Resource.MEMORY,
    factor: str = "1.5",
) -> Lesson:
    action = ActionType.RAISE_MEMORY if resource is Resource.MEMORY else ActionType.EXPAND_STORAGE
    symptom = (
        SymptomType.OOM_KILLED if resource is Resource.MEMORY else SymptomType.VOLUME_NEARLY_FULL
    )
    return Lesson(
        pattern=f"{symptom}/{component}/{action}",
        symptom=symptom,
        component=component,
        action=action,
        resource=resource,
        factor=Decimal(factor),
        evidence=[
            Evidence(platform="shop/a", similarity=0.9, before="16Gi", after="24Gi", verified=1)
        ],
    )


def request(**spec: Any) -> PlanRequest:
    return PlanRequest.model_validate({"requirements": {"dataVolume": "2Ti"}} | spec)


# -- derive_lessons ------------------------------------------------------------------------------


def test_the_factor_is_from_the_first_size_to_the_last_verified_one_per_platform() -> None:
    rows = [
        past("shop/a", DecisionPhase.FAILED, "16Gi", "24Gi", hours=0),
        past("shop/a", DecisionPhase.VERIFIED, "24Gi", "36Gi", hours=1),  # 16 -> 36: x2.25
        past("shop/b", DecisionPhase.VERIFIED, "32Gi", "48Gi"),  # x1.5
        past("shop/c", DecisionPhase.VERIFIED, "8Gi", "16Gi"),  # x2
    ]
    [got] = derive_lessons(HERE, rows)
    assert got.pattern == "OOMKilled/clickhouse/raiseMemory"
    assert got.resource is Resource.MEMORY
    assert got.factor == Decimal("2.00")  # the median
    a = next(e for e in got.evidence if e.platform == "shop/a")
    assert (a.before, a.after, a.verified, a.failed) == ("16Gi", "36Gi", 1, 1)


def test_only_similar_platforms_with_a_verified_remedy_teach() -> None:
    rows = [
        past("shop/far", DecisionPhase.VERIFIED, "16Gi", "32Gi", profile=FAR),
        past("shop/failed", DecisionPhase.FAILED, "16Gi", "24Gi"),
        past("shop/restart", DecisionPhase.VERIFIED, None, None, action=ActionType.RESTART_POD),
    ]
    assert derive_lessons(HERE, rows) == []
    rows.append(past("shop/near", DecisionPhase.VERIFIED, "16Gi", "24Gi"))
    [got] = derive_lessons(HERE, rows)
    assert [e.platform for e in got.evidence] == ["shop/near"]
    assert got.failed_platforms == 1
    assert derive_lessons(HERE, rows, MemoryPolicy(min_platforms=2)) == []


def test_lessons_for_a_model_name_no_platforms() -> None:
    context = lessons_context([lesson()])
    assert context[0]["grow"] == "clickhouse.memory"
    assert "shop/a" not in str(context)
    assert context[0]["similarPlatforms"] == [
        {"similarity": 0.9, "before": "16Gi", "after": "24Gi"}
    ]


def test_pattern_ids_round_trip_and_refuse_nonsense() -> None:
    assert parse_pattern_id("Drift/any/reapply") == (SymptomType.DRIFT, None, ActionType.REAPPLY)
    with pytest.raises(ValueError, match="not a pattern"):
        parse_pattern_id("OOMKilled/clickhouse")
    with pytest.raises(ValueError, match="not a pattern"):
        parse_pattern_id("OOMKilled/mysql/raiseMemory")


# -- apply_lessons -------------------------------------------------------------------------------


def test_no_lessons_no_change() -> None:
    plain = capacity.plan(request())
    assert apply_lessons(plain, request(), []) == plain


def test_memory_grows_by_the_factor_with_the_reason_after_its_line() -> None:
    plain = capacity.plan(request())
    designed = apply_lessons(plain, request(), [lesson()])
    before = parse_quantity(plain.clickhouse.resources.memory)
    assert parse_quantity(designed.clickhouse.resources.memory) == before * Decimal("1.5")
    at = next(i for i, line in enumerate(designed.rationale) if "OOMKilled/" in line)
    assert designed.rationale[at - 1].startswith("memory per replica: ")
    assert "shop/a (similarity 0.90, 16Gi -> 24Gi)" in designed.rationale[at]
    assert designed.estimated_monthly_cost_usd == capacity.monthly_cost_usd(
        designed.clickhouse, designed.postgres, PriceTable()
    )
    assert designed.rationale[-1].startswith("cost with lessons: ")


def test_a_pinned_field_is_kept_and_the_rationale_says_so() -> None:
    pinned = request(clickhouse={"resources": {"memory": "20Gi"}})
    plain = capacity.plan(pinned)
    designed = apply_lessons(plain, pinned, [lesson()])
    assert designed.clickhouse == plain.clickhouse
    assert designed.estimated_monthly_cost_usd == plain.estimated_monthly_cost_usd
    assert any(
        "kept — pinned (spec.clickhouse.resources.memory)" in line for line in designed.rationale
    )


def test_a_lesson_never_pushes_the_design_over_the_budget() -> None:
    plain = capacity.plan(request())
    tight = request(budget={"monthlyUSD": plain.estimated_monthly_cost_usd + 1})
    designed = apply_lessons(capacity.plan(tight), tight, [lesson()])
    assert designed.clickhouse == plain.clickhouse
    assert any("over the budget" in line for line in designed.rationale)
    roomy = request(budget={"monthlyUSD": plain.estimated_monthly_cost_usd * 2})
    grown = apply_lessons(capacity.plan(roomy), roomy, [lesson()])
    assert grown.estimated_monthly_cost_usd <= plain.estimated_monthly_cost_usd * 2
    assert "within the budget" in grown.rationale[-1]


def test_the_policy_caps_the_factor_and_the_size() -> None:
    plain = capacity.plan(request())
    memory = parse_quantity(plain.clickhouse.resources.memory)
    doubled = apply_lessons(plain, request(), [lesson(factor="4")])
    assert parse_quantity(doubled.clickhouse.resources.memory) == memory * 2  # max_factor
    assert any("(capped by policy)" in line for line in doubled.rationale)
    limit = PlannerPolicy().model_copy(
        update={"clickhouse": PlannerPolicy().clickhouse.model_copy(update={"max_memory": "40Gi"})}
    )
    capped = apply_lessons(plain, request(), [lesson(factor="4")], planner_policy=limit)
    assert parse_quantity(capped.clickhouse.resources.memory) == max(40 * GiB, memory)


def test_storage_keeper_and_postgres_lessons_each_grow_their_own_figure() -> None:
    plain = capacity.plan(request(requirements={"dataVolume": "2Ti", "availability": "high"}))
    lessons = [
        lesson(Component.CLICKHOUSE, Resource.STORAGE, "1.2"),
        lesson(Component.KEEPER, Resource.MEMORY, "2"),
        lesson(Component.POSTGRES, Resource.MEMORY, "1.5"),
    ]
    designed = apply_lessons(
        plain, request(requirements={"dataVolume": "2Ti", "availability": "high"}), lessons
    )
    assert parse_quantity(designed.clickhouse.storage.size) >= parse_quantity(
        plain.clickhouse.storage.size
    ) * Decimal("1.2")
    assert designed.clickhouse.keeper.resources.memory == "4Gi"
    assert designed.postgres.resources.memory == "3Gi"
    assert designed.clickhouse.resources == plain.clickhouse.resources
    keeper_line = next(i for i, line in enumerate(designed.rationale) if "/keeper/" in line)
    assert designed.rationale[keeper_line - 1].startswith("keeper pod: ")
