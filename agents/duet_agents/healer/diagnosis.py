"""The built-in rules: each symptom gets a diagnosis in words and at most one action.

For every symptom the rules list the actions worth trying, best first; the first whose
precondition holds is proposed, with parameters computed by the playbook. When none holds,
the diagnosis says why each was ruled out and proposes nothing: a person has to look. The
rules read the platform's recent decisions for one thing: a restart that did not cure a
symptom is not repeated within `Thresholds.restart_window`; the rules move on to the next
remedy (rebuilding the replica, promoting a standby), which needs approval.

With a `rank` (the operator's, from the platform memory), a symptom for which more than one
listed action applies gets them in the order the rank gives, and its reason in the text: the
remedy that verified most often on the same symptom comes first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from duet_agents.healer.actions import ActionType, Limits, NotApplicableError, Plan
from duet_agents.healer.evidence import clip, when
from duet_agents.healer.history import PastDecision, last_applied
from duet_agents.healer.observations import Component, Observation, PostgresRole
from duet_agents.healer.playbook import PLAYBOOK
from duet_agents.healer.symptoms import Cause, Symptom, SymptomType, Thresholds
from duet_agents.schema import CamelModel

# The Remediation resource allows 4096; a diagnosis a person reads in `kubectl describe`.
MAX_DIAGNOSIS_CHARS = 1500

A = ActionType

# The applicable actions (in the rules' order) -> the order to offer them in, and why.
Ranker = Callable[[Symptom, Sequence[ActionType]], tuple[list[ActionType], str]]


class Diagnosis(CamelModel):
    """What the healer concluded about one symptom, and the action it proposes (if any)."""

    symptom: Symptom
    text: str = Field(max_length=MAX_DIAGNOSIS_CHARS)
    action: ActionType | None = None
    parameters: dict[str, str] = Field(default_factory=dict)
    decided_by: str = Field(default="rules", description="`rules`, or `<provider>/<model>`.")

    @property
    def target(self) -> str | None:
        return self.parameters.get("target")

    @property
    def plan(self) -> Plan | None:
        return None if self.action is None else Plan(action=self.action, parameters=self.parameters)


def diagnose(
    observation: Observation,
    symptoms: Sequence[Symptom],
    *,
    now: datetime,
    thresholds: Thresholds | None = None,
    limits: Limits | None = None,
    history: Sequence[PastDecision] = (),
    rank: Ranker | None = None,
) -> list[Diagnosis]:
    """One diagnosis per symptom, in the symptoms' order."""
    return [
        diagnose_symptom(
            observation,
            s,
            now=now,
            thresholds=thresholds,
            limits=limits,
            history=history,
            rank=rank,
        )
        for s in symptoms
    ]


def diagnose_symptom(
    observation: Observation,
    symptom: Symptom,
    *,
    now: datetime,
    thresholds: Thresholds | None = None,
    limits: Limits | None = None,
    history: Sequence[PastDecision] = (),
    rank: Ranker | None = None,
) -> Diagnosis:
    t, lim = thresholds or Thresholds(), limits or Limits()
    finding, candidates = _rule(observation, symptom, now, t, history)
    ruled_out: list[str] = []
    applicable: dict[ActionType, Plan] = {}
    for action in candidates:
        try:
            applicable[action] = PLAYBOOK[action].plan(observation, symptom, lim)
        except NotApplicableError as e:
            ruled_out.append(f"{action}: {e}")
            continue
        if rank is None:
            break  # the first that applies is the rules' choice; the rest are not looked at
    ranking = ""
    order = list(applicable)
    if rank is not None and len(order) > 1:
        ranked, ranking = rank(symptom, order)
        # Only reorders: an action the rank does not know keeps its place after those it does.
        order = [a for a in ranked if a in applicable] + [a for a in order if a not in ranked]
        ranking = f" {ranking}"
    if order:
        action = order[0]
        plan = applicable[action]
        text = f"{symptom.reason}. {finding} Proposed: {action}, {PLAYBOOK[action].summary}"
        text += f" ({_describe(plan)})." + ranking + _not_chosen(ruled_out)
        return Diagnosis(
            symptom=symptom,
            text=clip(text, MAX_DIAGNOSIS_CHARS),
            action=action,
            parameters=plan.parameters,
        )
    text = f"{symptom.reason}. {finding} No playbook action applies"
    text += f" ({'; '.join(ruled_out)})" if ruled_out else ""
    text += "; a person should look at it."
    return Diagnosis(symptom=symptom, text=clip(text, MAX_DIAGNOSIS_CHARS))


def applicable_plans(
    observation: Observation, symptom: Symptom, limits: Limits | None = None
) -> list[Plan]:
    """Every playbook action whose precondition holds for the symptom, with its parameters:
    the choices a model is offered."""
    plans = []
    for action in PLAYBOOK.values():
        try:
            plans.append(action.plan(observation, symptom, limits))
        except NotApplicableError:
            continue
    return plans


# -- the rules -------------------------------------------------------------------------------------

Rule = tuple[str, list[ActionType]]  # what the symptom means; the actions to try, best first


@dataclass(frozen=True)
class _Case:
    symptom: Symptom
    primary: bool  # the symptom is about the PostgreSQL primary
    sidecar: str | None  # the failing container runs beside the database server: its name
    lost: bool  # out of service for longer than `replica_lost_after`
    restarted_at: datetime | None  # restartPod was applied to the pod within the window

    @property
    def after_restart(self) -> str:
        if self.restarted_at is None:
            return ""
        return f" A restart at {when(self.restarted_at)} did not cure it."


def _rule(
    observation: Observation,
    symptom: Symptom,
    now: datetime,
    t: Thresholds,
    history: Sequence[PastDecision],
) -> Rule:
    pod = observation.pod(symptom.pod)
    restart = last_applied(history, A.RESTART_POD, f"pod/{symptom.pod}") if symptom.pod else None
    restarted_at = restart.applied_at if restart else None
    case = _Case(
        symptom=symptom,
        primary=pod is not None and pod.postgres_role is PostgresRole.PRIMARY,
        sidecar=symptom.container if pod and pod.is_sidecar(symptom.container) else None,
        lost=now - symptom.first_seen >= t.replica_lost_after,
        restarted_at=(
            restarted_at if restarted_at and now - restarted_at < t.restart_window else None
        ),
    )
    return _RULES[symptom.type](case)


def _oom(case: _Case) -> Rule:
    if case.sidecar:
        return (
            f"The sidecar {case.sidecar} needs more memory than its limit. Duet sets a"
            " sidecar's memory, not the platform's design, so raising the database's memory"
            " would not reach it.",
            [],
        )
    return (
        "The container needs more memory than its limit for what it is asked to do.",
        [A.RAISE_MEMORY, A.SCALE_OUT],
    )


def _crash_loop(case: _Case) -> Rule:
    if case.sidecar:
        return _sidecar(case)
    if case.restarted_at is None:
        return (
            "The kubelet's restarts of the container have not helped; a new pod starts clean,"
            " possibly on another node.",
            [A.RESTART_POD],
        )
    if case.primary:
        return (
            "The PostgreSQL primary fails on its own, not because of its pod." + case.after_restart,
            [A.PROMOTE_POSTGRES_REPLICA],
        )
    return (
        "The container fails on its own, not because of its pod."
        + case.after_restart
        + " Its data may be damaged; its peers hold the data to rebuild it from.",
        [A.REPLACE_REPLICA],
    )


def _unschedulable(case: _Case) -> Rule:
    promote = [A.PROMOTE_POSTGRES_REPLICA] if case.primary else []
    if case.symptom.cause is Cause.VOLUME_NODE_AFFINITY:
        return (
            "Its volume lives on a node that is gone or cannot take it, so the pod cannot run"
            " anywhere until the replica gets a new volume.",
            [*promote, A.REPLACE_REPLICA],
        )
    if case.symptom.cause is Cause.INSUFFICIENT_RESOURCES:
        return (
            "The cluster has no room for the pod: add nodes (or let an autoscaler do it) or"
            " lower the platform's resources.",
            promote,
        )
    return ("The scheduler cannot place the pod; its message says why.", promote)


def _sidecar(case: _Case) -> Rule:
    """A sidecar failing: the database beside it is not, so its data and its role (primary,
    replica) are not in question, and nothing beyond a restart of the pod is tried."""
    if case.restarted_at is None:
        return (
            f"The sidecar {case.sidecar} fails, not the database server beside it; a new pod"
            " starts it clean, possibly on another node.",
            [A.RESTART_POD],
        )
    return (
        f"The sidecar {case.sidecar} fails on its own, not the database server beside it."
        + case.after_restart
        + " Its log says why (for wal-archiver: the backup target's keys, bucket or claim);"
        " no replica is rebuilt or promoted for a sidecar.",
        [],
    )


def _not_ready(case: _Case) -> Rule:
    if case.sidecar:
        return _sidecar(case)
    since = when(case.symptom.first_seen)
    # Without a peer to rebuild from or a standby to promote, a restart is still worth a try.
    restart = [] if case.restarted_at else [A.RESTART_POD]
    if case.primary and (case.lost or case.restarted_at):
        return (
            f"The PostgreSQL primary has been out of service since {since}." + case.after_restart,
            [A.PROMOTE_POSTGRES_REPLICA, *restart],
        )
    if case.lost or case.restarted_at:
        return (
            f"The replica has been out of service since {since} and counts as lost."
            + case.after_restart
            + " A lost replica is rebuilt from its peers' data where they have it.",
            [A.REPLACE_REPLICA, *restart],
        )
    return (
        "The pod runs but does not pass its readiness probe; a new pod often recovers a stuck"
        " server.",
        [A.RESTART_POD],
    )


def _volume(case: _Case) -> Rule:
    return (
        "The disk fills up: merges, then inserts, fail when it is full.",
        [A.EXPAND_STORAGE, A.SCALE_OUT],
    )


def _lag(case: _Case) -> Rule:
    symptom = case.symptom
    if symptom.cause is Cause.READ_ONLY and case.restarted_at:
        return (
            "The replica stays read-only." + case.after_restart + " Its metadata may be lost;"
            " rebuilding it from its peers restores it.",
            [A.REPLACE_REPLICA],
        )
    if symptom.cause is Cause.READ_ONLY:
        return (
            "A read-only replica usually lost its Keeper session; a restart reconnects it.",
            [A.RESTART_POD],
        )
    if symptom.component is Component.POSTGRES:
        return (
            "The standby cannot keep up with the primary's WAL; a fresh clone starts it from"
            " the primary's current state.",
            [A.REPLACE_REPLICA],
        )
    return (
        "The replica is catching up with its peers' inserts and merges; that usually resolves"
        " itself, and no playbook action makes it faster.",
        [],
    )


def _drift(case: _Case) -> Rule:
    return ("Someone or something changed an object Duet manages.", [A.REAPPLY])


_RULES: dict[SymptomType, Callable[[_Case], Rule]] = {
    SymptomType.OOM_KILLED: _oom,
    SymptomType.CRASH_LOOP: _crash_loop,
    SymptomType.UNSCHEDULABLE: _unschedulable,
    SymptomType.REPLICA_NOT_READY: _not_ready,
    SymptomType.VOLUME_NEARLY_FULL: _volume,
    SymptomType.REPLICATION_LAG: _lag,
    SymptomType.DRIFT: _drift,
}


def _describe(plan: Plan) -> str:
    return ", ".join(f"{k} {v}" for k, v in plan.parameters.items() if "uid" not in k.lower() and v)


def _not_chosen(ruled_out: list[str]) -> str:
    return f" Ruled out: {'; '.join(ruled_out)}." if ruled_out else ""
