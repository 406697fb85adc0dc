"""The healer's choices ranked by how they went before. Pure.

Each candidate action scores (verified + 1) / (settled + 2): its verified share of the past
tries on the same symptom (and component), pulled towards one half while there are few, so
one lucky try does not outrank a remedy with a long record, and an untried action sits
between those that worked and those that failed. Ties keep the rules' order, which is also
the order with no history at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from pydantic import Field

from duet_agents.healer.actions import ActionType
from duet_agents.healer.diagnosis import Ranker
from duet_agents.healer.history import DecisionPhase, PastDecision
from duet_agents.healer.observations import Component
from duet_agents.healer.symptoms import Symptom, SymptomType
from duet_agents.schema import CamelModel


class ActionStats(CamelModel):
    """How an action ended on one kind of symptom: verified, or failed."""

    verified: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)

    @property
    def settled(self) -> int:
        return self.verified + self.failed

    def __add__(self, other: ActionStats) -> ActionStats:
        return ActionStats(
            verified=self.verified + other.verified, failed=self.failed + other.failed
        )


class RankedAction(CamelModel):
    action: ActionType
    score: float = Field(ge=0, le=1)
    verified: int
    failed: int
    reason: str


def rank_actions(
    symptom: SymptomType,
    candidates: Sequence[ActionType],
    stats: Mapping[ActionType, ActionStats],
    component: Component | None = None,
) -> list[RankedAction]:
    """`candidates` (in the rules' order) best first, each with the record behind its place."""
    where = f"{symptom} on {component}" if component else str(symptom)
    ranked = []
    for action in candidates:
        record = stats.get(action, ActionStats())
        score = (record.verified + 1) / (record.settled + 2)
        if record.settled:
            reason = f"{action} verified {record.verified} of {record.settled} times on {where}"
        else:
            reason = f"{action} has no settled record on {where}"
        ranked.append(
            RankedAction(
                action=action,
                score=round(score, 4),
                verified=record.verified,
                failed=record.failed,
                reason=reason,
            )
        )
    # sorted() is stable: equal scores keep the rules' order.
    return sorted(ranked, key=lambda item: -item.score)


def ranking_reason(ranked: Sequence[RankedAction]) -> str:
    """One sentence for a diagnosis: why the actions are tried in this order."""
    if not any(item.verified or item.failed for item in ranked):
        return "No past results for these actions: the rules' order."
    return "Ranked by past results: " + "; ".join(item.reason for item in ranked) + "."


StatsKey = tuple[SymptomType, Component | None]


def ranker(stats: Mapping[StatsKey, Mapping[ActionType, ActionStats]]) -> Ranker:
    """The diagnosis's `rank` over counts already looked up, by symptom type and component
    (the lookup is I/O, the diagnosis is not)."""

    def rank(symptom: Symptom, candidates: Sequence[ActionType]) -> tuple[list[ActionType], str]:
        record = stats.get((symptom.type, symptom.component), {})
        ranked = rank_actions(symptom.type, candidates, record, symptom.component)
        return [item.action for item in ranked], ranking_reason(ranked)

    return rank


def stats_from_history(
    history: Iterable[PastDecision], symptom: SymptomType
) -> dict[ActionType, ActionStats]:
    """The same counts from the platform's own Remediation objects (`PastDecision`)."""
    counts: dict[ActionType, ActionStats] = defaultdict(ActionStats)
    prefix = f"{symptom}/"
    for decision in history:
        if not decision.symptom_key.startswith(prefix):
            continue
        if decision.phase is DecisionPhase.VERIFIED:
            counts[decision.action] += ActionStats(verified=1)
        elif decision.phase is DecisionPhase.FAILED:
            counts[decision.action] += ActionStats(failed=1)
    return dict(counts)


def merge_stats(*sources: Mapping[ActionType, ActionStats]) -> dict[ActionType, ActionStats]:
    """Counts from several sources added up (the store's and the platform's own, when the
    platform's Remediations are not recorded in the store yet)."""
    merged: dict[ActionType, ActionStats] = defaultdict(ActionStats)
    for source in sources:
        for action, record in source.items():
            merged[action] += record
    return dict(merged)
