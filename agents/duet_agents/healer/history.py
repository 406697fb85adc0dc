"""The platform's recent decisions, as the rules and the autonomy policy need them.

The operator builds these from the platform's `Remediation` objects: `symptom_key` is
`<spec.symptom.type>/<spec.symptom.object>`, `action` is `spec.action.type`, `target` is
`spec.action.parameters.target`, `phase` is `status.phase`, `mode` is `spec.mode`,
`decided_at` the creation time and `applied_at` is `status.appliedAt`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import AwareDatetime

from duet_agents.healer.actions import ActionType
from duet_agents.schema import CamelModel


class AutonomyMode(enum.StrEnum):
    """The same values as the DataPlatform's `spec.autonomy.mode`."""

    OBSERVE = "observe"
    RECOMMEND = "recommend"
    AUTO = "auto"


class DecisionPhase(enum.StrEnum):
    """The same values as the Remediation resource's `status.phase`."""

    PENDING = "Pending"
    APPROVED = "Approved"
    APPLIED = "Applied"
    VERIFIED = "Verified"
    FAILED = "Failed"
    REJECTED = "Rejected"
    EXPIRED = "Expired"


OPEN_PHASES = frozenset({DecisionPhase.PENDING, DecisionPhase.APPROVED, DecisionPhase.APPLIED})
# Approved is in flight too: the operator is about to apply it, and nothing else may start.
IN_FLIGHT_PHASES = frozenset({DecisionPhase.APPROVED, DecisionPhase.APPLIED})


class PastDecision(CamelModel):
    symptom_key: str
    action: ActionType
    target: str
    phase: DecisionPhase
    mode: AutonomyMode
    decided_at: AwareDatetime
    applied_at: AwareDatetime | None = None

    @property
    def open(self) -> bool:
        return self.phase in OPEN_PHASES

    @property
    def in_flight(self) -> bool:
        return self.phase in IN_FLIGHT_PHASES

    @property
    def cooldown_from(self) -> datetime | None:
        """When its cooldown started: when it was applied, or when a person turned it down
        (a rejection means "not this, not now"). Pending and expired ones start none."""
        if self.applied_at is not None:
            return self.applied_at
        return self.decided_at if self.phase is DecisionPhase.REJECTED else None


def applied_within(
    history: Iterable[PastDecision], now: datetime, window: timedelta
) -> list[PastDecision]:
    return [d for d in history if d.applied_at is not None and now - d.applied_at < window]


def last_applied(
    history: Iterable[PastDecision], action: ActionType, target: str
) -> PastDecision | None:
    """The most recent time `action` was applied to `target`."""
    matching = [
        d for d in history if d.action is action and d.target == target and d.applied_at is not None
    ]
    return max(matching, key=lambda d: d.applied_at or d.decided_at, default=None)
