"""The healer's candidates ranked by how they went before, with the reasons."""

from __future__ import annotations

from datetime import UTC, datetime

from duet_agents.healer import ActionType, AutonomyMode, DecisionPhase, PastDecision, SymptomType
from duet_agents.healer.observations import Component
from duet_agents.memory import ActionStats, merge_stats, rank_actions, ranking_reason
from duet_agents.memory.ranking import stats_from_history

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
