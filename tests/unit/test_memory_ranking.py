"""The healer's candidates ranked by how they went before, with the reasons."""

from __future__ import annotations

from datetime import UTC, datetime

from duet_agents.healer import ActionType, AutonomyMode, DecisionPhase, PastDecision, SymptomType
from duet_agents.healer.actions import Limits
from duet_agents.healer.diagnosis import diagnose_symptom
from duet_agents.healer.observations import Component, Observation
from duet_agents.healer.symptoms import Symptom, Thresholds, detect
from duet_agents.memory import (
    ActionStats,
    StatsKey,
    merge_stats,
    rank_actions,
    ranker,
    ranking_reason,
)
from duet_agents.memory.ranking import stats_from_history
from tests.unit.test_healer_playbook import shard
from tests.unit.test_healer_readings import NOW as READ_AT

A = ActionType
OOM = SymptomType.OOM_KILLED
NOW = datetime(2025, 3, 1, tzinfo=UTC)


def test_without_history_the_rules_order_stands() -> None:
    ranked = rank_actions(OOM, [A.RAISE_MEMORY, A.SCALE_OUT], {})
    assert [r.action for r in ranked] == [A.RAISE_MEMORY, A.SCALE_OUT]
    assert ranking_reason(ranked) == "No past results for these actions: the rules' order."


def test_what_verified_more_often_goes_first_and_says_so() -> None:
    stats = {
        A.RAISE_MEMORY: ActionStats(verified=1, failed=4),
        A.SCALE_OUT: ActionStats(verified=3, failed=0),
    }
    ranked = rank_actions(OOM, [A.RAISE_MEMORY, A.SCALE_OUT], stats, Component.CLICKHOUSE)
    assert [r.action for r in ranked] == [A.SCALE_OUT, A.RAISE_MEMORY]
    assert ranked[0].reason == "scaleOut verified 3 of 3 times on OOMKilled on clickhouse"
    assert "raiseMemory verified 1 of 5 times" in ranking_reason(ranked)


def test_one_lucky_try_does_not_outrank_a_long_record() -> None:
    stats = {
        A.RAISE_MEMORY: ActionStats(verified=18, failed=2),
        A.SCALE_OUT: ActionStats(verified=1),
    }
    ranked = rank_actions(OOM, [A.SCALE_OUT, A.RAISE_MEMORY], stats)
    assert ranked[0].action is A.RAISE_MEMORY
    # An untried action sits between one that worked and one that failed.
    failed = {A.RAISE_MEMORY: ActionStats(failed=1)}
    ranked = rank_actions(OOM, [A.RAISE_MEMORY, A.SCALE_OUT], failed)
    assert [r.action for r in ranked] == [A.SCALE_OUT, A.RAISE_MEMORY]


def decision(key: str, action: ActionType, phase: DecisionPhase) -> PastDecision:
    return PastDecision(
        symptom_key=key,
        action=action,
        target="statefulset/web-clickhouse-0",
        phase=phase,
        mode=AutonomyMode.AUTO,
        decided_at=NOW,
    )


def test_stats_from_the_platforms_own_remediations() -> None:
    history = [
        decision("OOMKilled/pod/web-0", A.RAISE_MEMORY, DecisionPhase.VERIFIED),
        decision("OOMKilled/pod/web-1", A.RAISE_MEMORY, DecisionPhase.FAILED),
        decision("OOMKilled/pod/web-1", A.SCALE_OUT, DecisionPhase.PENDING),  # not settled
        decision("CrashLoop/pod/web-0", A.RESTART_POD, DecisionPhase.VERIFIED),  # other symptom
    ]
    stats = stats_from_history(history, OOM)
    assert stats == {A.RAISE_MEMORY: ActionStats(verified=1, failed=1)}
    merged = merge_stats(
        stats, {A.RAISE_MEMORY: ActionStats(verified=2), A.SCALE_OUT: ActionStats()}
    )
    assert merged[A.RAISE_MEMORY] == ActionStats(verified=3, failed=1)


# -- the ranking in the healer's diagnosis -------------------------------------------------------


def oom_symptom_of(seen: Observation) -> Symptom:
    return next(s for s in detect(seen, READ_AT, Thresholds()) if s.type is OOM)


def test_the_diagnosis_offers_what_verified_most_often_first_and_says_why() -> None:
    seen = shard("ok", "oom")
    symptom = oom_symptom_of(seen)
    plain = diagnose_symptom(seen, symptom, now=READ_AT)
    assert plain.action is A.RAISE_MEMORY
    assert "Ranked" not in plain.text

    stats: dict[StatsKey, dict[ActionType, ActionStats]] = {
        (OOM, Component.CLICKHOUSE): {
            A.RAISE_MEMORY: ActionStats(verified=0, failed=3),
            A.SCALE_OUT: ActionStats(verified=2, failed=0),
        }
    }
    ranked = diagnose_symptom(seen, symptom, now=READ_AT, rank=ranker(stats))
    assert ranked.action is A.SCALE_OUT
    assert ranked.parameters["to"] == "2"
    assert "Proposed: scaleOut" in ranked.text
    assert "Ranked by past results: scaleOut verified 2 of 2 times on OOMKilled on clickhouse" in (
        ranked.text
    )
    assert "raiseMemory verified 0 of 3 times" in ranked.text


def test_no_record_or_one_applicable_action_keeps_the_rules_choice() -> None:
    seen = shard("ok", "oom")
    symptom = oom_symptom_of(seen)
    unknown = diagnose_symptom(seen, symptom, now=READ_AT, rank=ranker({}))
    assert unknown.action is A.RAISE_MEMORY
    assert "No past results for these actions: the rules' order." in unknown.text
    # Another symptom's record says nothing about this one.
    elsewhere: dict[StatsKey, dict[ActionType, ActionStats]] = {
        (OOM, Component.KEEPER): {A.SCALE_OUT: ActionStats(verified=9)}
    }
    assert diagnose_symptom(seen, symptom, now=READ_AT, rank=ranker(elsewhere)).action is (
        A.RAISE_MEMORY
    )
    # Shards pinned: only raiseMemory applies, so there is nothing to rank.
    pinned = Limits(pinned_shards=True)
    stats: dict[StatsKey, dict[ActionType, ActionStats]] = {
        (OOM, Component.CLICKHOUSE): {A.SCALE_OUT: ActionStats(verified=9)}
    }
    only = diagnose_symptom(seen, symptom, now=READ_AT, limits=pinned, rank=ranker(stats))
    assert only.action is A.RAISE_MEMORY
    assert "Ranked" not in only.text
    assert "past results" not in only.text
