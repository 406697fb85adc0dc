"""The autonomy policy: what happens to each proposal, given what the user allows.

`decide` gives every diagnosis one outcome, checked in this order:

1. no action proposed -> `record` (for a person to read);
2. an open decision for the same symptom (one in flight, or one still waiting under the
   current mode) -> `suppressed`: it is already being handled;
3. the action on the same target is in its cooldown -> `suppressed`;
4. `observe` mode -> `record`: the kill switch, nothing is ever applied;
5. the action deletes data or always needs approval (replaceReplica, scaleOut), the mode is
   `recommend`, or the action is not in `spec.autonomy.actions` -> `pending` (approval);
6. another action is in flight on the platform, or was chosen in this same call ->
   `suppressed`: never two actions at once;
7. `maxActionsPerHour` actions were applied in the last hour -> `suppressed`;
8. otherwise `apply`.

`suppressed` writes nothing: the symptom is still there on the next reconcile, and is decided
again then. When the mode changes, the operator should expire the open `Pending` records of
the old mode for symptoms it decides again (step 2 only counts waiting ones of the current
mode). An approved decision is started through `approved_gate`, which keeps the kill switch
and the one-at-a-time rule, but not the rate limit or cooldowns: a person chose it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field

from duet_agents.healer.actions import Action, ActionType
from duet_agents.healer.diagnosis import Diagnosis
from duet_agents.healer.evidence import duration, when
from duet_agents.healer.history import AutonomyMode, PastDecision, applied_within
from duet_agents.healer.playbook import PLAYBOOK
from duet_agents.healer.symptoms import SymptomType
from duet_agents.schema import CamelModel

RATE_WINDOW = timedelta(hours=1)

# Which symptom gets the one action slot first: losing the PostgreSQL primary or a server's
# memory stops service now; a full disk stops inserts soon; drift is the least urgent.
PRIORITY = (
    SymptomType.OOM_KILLED,
    SymptomType.CRASH_LOOP,
    SymptomType.REPLICA_NOT_READY,
    SymptomType.VOLUME_NEARLY_FULL,
    SymptomType.UNSCHEDULABLE,
    SymptomType.REPLICATION_LAG,
    SymptomType.DRIFT,
)


class Autonomy(CamelModel):
    """The DataPlatform's `spec.autonomy`, in the healer's own vocabulary."""

    mode: AutonomyMode = AutonomyMode.RECOMMEND
    max_actions_per_hour: int = Field(default=6, ge=0)
    actions: frozenset[ActionType] = frozenset(
        {
            ActionType.RESTART_POD,
            ActionType.RAISE_MEMORY,
            ActionType.EXPAND_STORAGE,
            ActionType.REAPPLY,
        }
    )


class Outcome(enum.StrEnum):
    RECORD = "record"  # write the decision down; apply nothing
    PENDING = "pending"  # write it down; wait for a person's approval
    APPLY = "apply"  # write it down and apply it now
    SUPPRESSED = "suppressed"  # write nothing now; decided again on a later reconcile


class Decision(CamelModel):
    diagnosis: Diagnosis
    outcome: Outcome
    reason: str


class Gate(CamelModel):
    allowed: bool
    reason: str


def decide(
    diagnoses: Sequence[Diagnosis],
    *,
    autonomy: Autonomy,
    history: Sequence[PastDecision],
    now: datetime,
    playbook: Mapping[ActionType, Action] = PLAYBOOK,
) -> list[Decision]:
    """One decision per diagnosis, in the diagnoses' order. At most one is `apply`: the most
    urgent one (by `PRIORITY`, then the oldest symptom) that may run."""
    order = sorted(range(len(diagnoses)), key=lambda i: _urgency(diagnoses[i]))
    decided: dict[int, Decision] = {}
    state = _Round(autonomy=autonomy, history=history, now=now, playbook=playbook)
    for i in order:
        outcome, reason = state.outcome(diagnoses[i])
        if outcome is Outcome.APPLY:
            state.applying = diagnoses[i]
        decided[i] = Decision(diagnosis=diagnoses[i], outcome=outcome, reason=reason)
    return [decided[i] for i in range(len(diagnoses))]


def approved_gate(
    candidate: PastDecision, *, autonomy: Autonomy, history: Sequence[PastDecision]
) -> Gate:
    """Whether an approved decision may be applied now. `history` may include `candidate`."""
    if autonomy.mode is AutonomyMode.OBSERVE:
        return Gate(allowed=False, reason="observe mode: nothing is applied, approved or not")
    if not candidate.in_flight or candidate.applied_at is not None:
        return Gate(allowed=False, reason=f"the decision is {candidate.phase}, not Approved")
    others = [d for d in history if d != candidate and d.in_flight]
    running = [d for d in others if d.applied_at is not None]
    if running:
        return Gate(allowed=False, reason=f"{_name(running[0])} is being applied")
    turn = (candidate.decided_at, candidate.symptom_key)
    earlier = [d for d in others if (d.decided_at, d.symptom_key) < turn]
    if earlier:
        first = min(earlier, key=lambda d: (d.decided_at, d.symptom_key))
        return Gate(allowed=False, reason=f"{_name(first)} was approved first and goes first")
    return Gate(allowed=True, reason="approved, and nothing else is in flight")


# -- steps -----------------------------------------------------------------------------------------


Verdict = tuple[Outcome, str]


@dataclass
class _Round:
    """One call of `decide`: its inputs, and the action it already chose to apply."""

    autonomy: Autonomy
    history: Sequence[PastDecision]
    now: datetime
    playbook: Mapping[ActionType, Action]
    applying: Diagnosis | None = None

    def outcome(self, diagnosis: Diagnosis) -> Verdict:
        if diagnosis.action is None or diagnosis.target is None:
            return Outcome.RECORD, "no playbook action applies: recorded for a person"
        action = self.playbook[diagnosis.action]
        return (
            self._duplicate(diagnosis)
            or _cooling_down(action, diagnosis.target, self.history, self.now)
            or self._approval(action)
            or self._one_at_a_time()
            or self._rate_limit()
            or (Outcome.APPLY, f"auto mode: {action.type} is allowed")
        )

    def _duplicate(self, diagnosis: Diagnosis) -> Verdict | None:
        for past in self.history:
            if past.symptom_key != diagnosis.symptom.key:
                continue
            if past.in_flight or (past.open and past.mode is self.autonomy.mode):
                return Outcome.SUPPRESSED, f"already decided: {_name(past)} is {past.phase}"
        return None

    def _approval(self, action: Action) -> Verdict | None:
        mode = self.autonomy.mode
        if mode is AutonomyMode.OBSERVE:
            return Outcome.RECORD, "observe mode: recorded, nothing is applied"
        if action.deletes_data:
            return Outcome.PENDING, f"{action.type} deletes data: it always needs approval"
        if action.always_needs_approval:
            return Outcome.PENDING, f"{action.type} always needs approval"
        if mode is AutonomyMode.RECOMMEND:
            return Outcome.PENDING, "recommend mode: waits for approval"
        if action.type not in self.autonomy.actions:
            return Outcome.PENDING, (
                f"{action.type} is not in spec.autonomy.actions: waits for approval"
            )
        return None

    def _one_at_a_time(self) -> Verdict | None:
        in_flight = [d for d in self.history if d.in_flight]
        if in_flight:
            return Outcome.SUPPRESSED, f"one action at a time: {_name(in_flight[0])} is in flight"
        if self.applying is not None:
            first = f"{self.applying.action} on {self.applying.target}"
            return Outcome.SUPPRESSED, f"one action at a time: {first} goes first"
        return None

    def _rate_limit(self) -> Verdict | None:
        applied = len(applied_within(self.history, self.now, RATE_WINDOW))
        limit = self.autonomy.max_actions_per_hour
        if applied < limit:
            return None
        return Outcome.SUPPRESSED, (
            f"rate limit: {applied} actions applied in the last hour, at most {limit}"
        )


def _cooling_down(
    action: Action, target: str, history: Sequence[PastDecision], now: datetime
) -> Verdict | None:
    starts = [
        d.cooldown_from
        for d in history
        if d.action is action.type and d.target == target and d.cooldown_from is not None
    ]
    last = max((s for s in starts if s is not None), default=None)
    if last is None or now - last >= action.cooldown:
        return None
    return Outcome.SUPPRESSED, (
        f"cooldown: {action.type} on {target} at {when(last)}; not again for "
        f"{duration(action.cooldown)} (until {when(last + action.cooldown)})"
    )


def _urgency(diagnosis: Diagnosis) -> tuple[int, datetime, str]:
    symptom = diagnosis.symptom
    return PRIORITY.index(symptom.type), symptom.first_seen, symptom.key


def _name(decision: PastDecision) -> str:
    return f"{decision.action} on {decision.target}"
