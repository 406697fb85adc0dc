"""The healer in the operator: one pass over a platform, as an ordered list of steps:

    observe -> progress (approved, applied, stale) -> detect -> diagnose -> decide -> record

The decisions are `duet_agents.healer`'s (pure); this module does their I/O. Every decision
that is not suppressed becomes a `Remediation` owned by the platform, and every status step
of one is an Event on the platform. The pure helpers (names, the body of a Remediation, the
policy's view of one) come first and are unit tested; the `Healer` class does the calls.

Every action of the playbook is executed: restartPod deletes the pod; replaceReplica deletes
the pod and its volume claim (always approved by a person first); reapply reconciles;
raiseMemory, expandStorage and scaleOut raise a figure of the design (`status.adjustments`, a
floor over every later planning) and reconcile, so the change is the design's and the drift
timer keeps it; promotePostgresReplica promotes the standby with `pg_promote()` and moves
`status.postgresPrimary`, which the rendering follows. A decision for an action this version
does not know is moved to Failed saying so, and counts for the policy as turned down (its
cooldown starts), so it is not proposed again on every pass.

While a decision is being carried out (Approved or Applied, not yet Verified) the platform's
condition `Healing` is True and its phase, when not Ready, is Healing rather than Degraded.

With the platform memory on, the rules' applicable actions for a symptom are ranked by how
often each verified on the same symptom before (on any platform), the reason in the
diagnosis; each symptom that appears is recorded as an outcome of the platform's design, and
each step of each Remediation as its record (docs/memory.md). The memory never fails a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from duet_agents.healer import (
    PLAYBOOK,
    ActionType,
    Autonomy,
    AutonomyMode,
    Decision,
    DecisionPhase,
    Observation,
    Outcome,
    PastDecision,
    Symptom,
    Thresholds,
    VerificationState,
    approved_gate,
    decide,
    detect,
    diagnose,
)
from duet_agents.healer.actions import Limits, Plan
from duet_agents.healer.diagnosis import Diagnosis, Ranker
from duet_agents.healer.observations import Component
from duet_agents.healer.readings import (
    claim_observation,
    event_observation,
    has_component,
    pod_observation,
    statefulset_observation,
)
from duet_agents.healer.symptoms import SymptomType
from duet_agents.memory import MemorySettings, RemediationRecord, ranker
from duet_agents.planner.adjustments import (
    AdjustedField,
    Adjustment,
    adjust,
    current_value,
    merged,
    pinned_fields,
)
from duet_agents.query.engines import InvalidURLError
from duet_operator import metrics, postgres_failover
from duet_operator.kube.client import Kube, KubeError, Manifest
from duet_operator.models import API_VERSION, GROUP, DataPlatform
from duet_operator.models.common import Condition, ConditionStatus
from duet_operator.models.dataplatform import AutonomyMode as SpecAutonomyMode
from duet_operator.models.dataplatform import DataPlatformStatus, Phase, PlannerProvider
from duet_operator.models.remediation import Remediation, RemediationPhase, RemediationStatus
from duet_operator.platform_memory import PlatformMemory, platform_key, symptom_outcome
from duet_operator.probes import DatabaseProbes, ProbeSettings
from duet_operator.reconcile import Event, Reconciler
from duet_operator.reconcile import Outcome as ReconcileOutcome
from duet_operator.render.naming import PLATFORM_LABEL, Names
from duet_operator.render.objects import owner_reference
from duet_operator.render.postgres import primary_of
from duet_operator.status import ConditionType, Reason, find, set_condition
from duet_operator.status import phase_of as platform_phase
from duet_operator.volumes import claim_owner

log = logging.getLogger("duet.healer")

KIND = "Remediation"
SYMPTOM_LABEL = f"{GROUP}/symptom"
# The component the symptom is on, for the memory's patterns (`OOMKilled/clickhouse/...`).
COMPONENT_LABEL = f"{GROUP}/component"
# What the policy decided when the record was made, so that a record whose status was never
# written (the operator stopped between the two writes) still starts the way it was meant to.
OUTCOME_ANNOTATION = f"{GROUP}/outcome"
REASON_ANNOTATION = f"{GROUP}/outcome-reason"
EXECUTABLE = frozenset(
    {
        ActionType.RESTART_POD,
        ActionType.REAPPLY,
        ActionType.RAISE_MEMORY,
        ActionType.EXPAND_STORAGE,
        ActionType.SCALE_OUT,
        ActionType.REPLACE_REPLICA,
        ActionType.PROMOTE_POSTGRES_REPLICA,
    }
)
# The condition that marks a decision this version could not carry out.
APPLIED_CONDITION = "Applied"
NOT_EXECUTABLE = "NotExecutable"
OBSERVE_MESSAGE = "observe mode: recorded only"
MAX_MESSAGE_CHARS = 4096  # the CRD's status.message
TERMINAL = frozenset(
    {
        RemediationPhase.VERIFIED,
        RemediationPhase.FAILED,
        RemediationPhase.REJECTED,
        RemediationPhase.EXPIRED,
    }
)
# The `result` of duet_remediations_total per phase reached; this version rejects only in
# observe mode, where a rejection is the record itself.
RESULTS = {
    RemediationPhase.PENDING: "pending",
    RemediationPhase.APPROVED: "approved",
    RemediationPhase.APPLIED: "applied",
    RemediationPhase.VERIFIED: "verified",
    RemediationPhase.FAILED: "failed",
    RemediationPhase.REJECTED: "recorded",
    RemediationPhase.EXPIRED: "expired",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WARNING_PHASES = frozenset({RemediationPhase.FAILED, RemediationPhase.PENDING})


class RefusedError(Exception):
    """An approved decision the operator will not carry out, and why (for the record)."""


class HealSettings(BaseSettings):
    """`DUET_HEAL_<FIELD>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DUET_HEAL_")

    interval_seconds: float = Field(
        default=15,
        gt=0,
        description="How often each platform is looked at without a pod changing: for"
        " symptoms that take time (not Ready for 30 s) and to verify applied remedies.",
    )
    provisioning_grace_seconds: float = Field(
        default=300,
        ge=0,
        description="A platform still being provisioned is left to its reconcile this long"
        " after its creation: pods coming up are not symptoms, and a burst of new platforms"
        " should not cost a healer pass per pod event.",
    )
    quiet_recheck_seconds: float = Field(
        default=120,
        gt=0,
        description="A Ready platform whose last pass found nothing is looked at again after"
        " this, not on every timer tick: for what only the database probes see (a disk"
        " filling, replication lag), at a cost that stays small with hundreds of platforms.",
    )
    pending_ttl_seconds: float = Field(
        default=3600,
        gt=0,
        description="A Pending decision nobody approved within this is Expired: the state it"
        " was made for has likely moved on; a fresh one is made if the symptom remains.",
    )


# -- pure helpers ------------------------------------------------------------------------------


def symptom_hash(key: str) -> str:
    """A label-safe stand-in for a symptom key (which has slashes and may be long)."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def symptom_key(record: Remediation) -> str:
    symptom = record.spec.symptom
    return f"{symptom.type}/{symptom.object}"


def sequence_of(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def remediation_name(platform: str, key: str, records: Iterable[Remediation]) -> str:
    """`<platform>-<symptom hash>-<n>`, n one past the last closed record of the symptom: the
    same while one is open, so a second pass (or a restarted operator) arrives at the name of
    the record it already made instead of a second one."""
    digest = symptom_hash(key)
    closed = [
        sequence_of(r.metadata.name)
        for r in records
        if r.metadata.labels.get(SYMPTOM_LABEL) == digest and phase_of(r) in TERMINAL
    ]
    return f"{platform}-{digest}-{max(closed, default=0) + 1}"


def phase_of(record: Remediation) -> RemediationPhase:
    return record.status.phase or RemediationPhase.PENDING


def not_executable(record: Remediation) -> bool:
    return any(
        c.type == APPLIED_CONDITION and c.reason == NOT_EXECUTABLE for c in record.status.conditions
    )


def past_decision(record: Remediation) -> PastDecision:
    """The policy's view of a record (duet_agents.healer.history). One this version could
    not execute counts as turned down, so its cooldown keeps it from being made again."""
    phase = DecisionPhase(phase_of(record).value)
    if phase is DecisionPhase.FAILED and not_executable(record):
        phase = DecisionPhase.REJECTED
    created = record.metadata.creation_timestamp or datetime.now(UTC)
    return PastDecision(
        symptom_key=symptom_key(record),
        action=ActionType(record.spec.action.type.value),
        target=record.spec.action.parameters.get("target", ""),
        phase=phase,
        mode=AutonomyMode(record.spec.mode.value),
        decided_at=created,
        applied_at=record.status.applied_at,
    )


def autonomy_of(
    platform: DataPlatform, default_mode: SpecAutonomyMode = SpecAutonomyMode.RECOMMEND
) -> Autonomy:
    """The platform's policy; its mode, when the spec leaves it unset, the operator's."""
    spec = platform.spec.autonomy
    return Autonomy(
        mode=AutonomyMode((spec.mode or default_mode).value),
        max_actions_per_hour=spec.max_actions_per_hour,
        actions=frozenset(ActionType(a.value) for a in spec.actions),
    )


MEMORY_FIELDS = {
    Component.CLICKHOUSE: AdjustedField.CLICKHOUSE_MEMORY,
    Component.KEEPER: AdjustedField.KEEPER_MEMORY,
    Component.POSTGRES: AdjustedField.POSTGRES_MEMORY,
}
STORAGE_FIELDS = {
    Component.CLICKHOUSE: AdjustedField.CLICKHOUSE_STORAGE,
    Component.KEEPER: AdjustedField.KEEPER_STORAGE,
    Component.POSTGRES: AdjustedField.POSTGRES_STORAGE,
}


def limits_of(platform: DataPlatform) -> Limits:
    """The playbook's bounds, with the figures the spec pins out of the healer's reach."""
    pinned = pinned_fields(platform.spec.plan_request())
    return Limits(
        pinned_memory=frozenset(c for c, f in MEMORY_FIELDS.items() if f in pinned),
        pinned_storage=frozenset(c for c, f in STORAGE_FIELDS.items() if f in pinned),
        pinned_shards=AdjustedField.CLICKHOUSE_SHARDS in pinned,
    )


def component_of_statefulset(names: Names, statefulset: str) -> Component:
    if statefulset == names.keeper:
        return Component.KEEPER
    if statefulset == names.postgres:
        return Component.POSTGRES
    return Component.CLICKHOUSE


def adjustment_for(record: Remediation, names: Names, now: datetime) -> Adjustment | None:
    """The figure of the design an approved raiseMemory, expandStorage or scaleOut raises;
    None for the other actions."""
    action = ActionType(record.spec.action.type.value)
    parameters = record.spec.action.parameters
    if action is ActionType.RAISE_MEMORY:
        field = MEMORY_FIELDS[component_of_statefulset(names, parameters["statefulset"])]
    elif action is ActionType.EXPAND_STORAGE:
        owner = claim_owner(parameters["claim"])
        field = STORAGE_FIELDS[component_of_statefulset(names, owner)]
    elif action is ActionType.SCALE_OUT:
        field = AdjustedField.CLICKHOUSE_SHARDS
    else:
        return None
    symptom = record.spec.symptom
    return Adjustment(
        field=field,
        value=parameters["to"],
        remediation=record.metadata.name,
        reason=f"{symptom.type} on {symptom.object}"[:512],
        at=now,
    )


def healing_condition(
    status: DataPlatformStatus,
    in_progress: Sequence[Remediation],
    *,
    generation: int | None,
    now: datetime,
) -> DataPlatformStatus | None:
    """The status with `Healing` (and the phase) as the open decisions say, or None when it
    already says so. A platform the healer never acted on has no Healing condition at all."""
    current = find(status.conditions, ConditionType.HEALING)
    if in_progress:
        wanted, reason = True, Reason.REMEDIATING
        message = "; ".join(
            f"{r.metadata.name}: {r.spec.action.type} ({phase_of(r)})" for r in in_progress
        )[:MAX_MESSAGE_CHARS]
    elif current is None:
        return None
    else:
        wanted, reason, message = False, Reason.NO_REMEDIATION, "no remediation in progress"
    same = current is not None and (current.status == ConditionStatus.TRUE) == wanted
    if same and current is not None and current.message == message:
        return None
    conditions = set_condition(
        status.conditions,
        ConditionType.HEALING,
        wanted,
        reason,
        message,
        generation=generation,
        now=now,
    )
    was_ready = status.phase in (Phase.READY, Phase.DEGRADED, Phase.HEALING)
    phase = platform_phase(conditions, was_ready=was_ready, has_design=status.design is not None)
    return status.model_copy(update={"conditions": conditions, "phase": phase})


def remediation_body(
    platform: DataPlatform, decision: Decision, name: str, mode: AutonomyMode
) -> Manifest:
    """The Remediation for a decision that carries an action, as applied (no status: that is
    a subresource, written next; no `approved`: that field is the person's)."""
    diagnosis = decision.diagnosis
    assert diagnosis.action is not None
    meta = platform.metadata
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "duet",
                "app.kubernetes.io/managed-by": "duet",
                PLATFORM_LABEL: meta.name,
                SYMPTOM_LABEL: symptom_hash(diagnosis.symptom.key),
                **(
                    {COMPONENT_LABEL: str(diagnosis.symptom.component)}
                    if diagnosis.symptom.component is not None
                    else {}
                ),
            },
            "annotations": {
                OUTCOME_ANNOTATION: str(decision.outcome),
                REASON_ANNOTATION: decision.reason[:1024],
            },
            "ownerReferences": [owner_reference(platform)],
        },
        "spec": {
            "platformRef": {"name": meta.name},
            "symptom": diagnosis.symptom.record(),
            "diagnosis": diagnosis.text,
            "action": {"type": str(diagnosis.action), "parameters": dict(diagnosis.parameters)},
            "mode": str(mode),
        },
    }


def first_phase(record: Remediation) -> tuple[RemediationPhase, str]:
    """Where a new record starts, from the outcome it was made with."""
    outcome = record.metadata.annotations.get(OUTCOME_ANNOTATION, str(Outcome.PENDING))
    reason = record.metadata.annotations.get(REASON_ANNOTATION, "")
    if outcome == Outcome.RECORD:
        return RemediationPhase.REJECTED, OBSERVE_MESSAGE
    if outcome == Outcome.APPLY:
        return RemediationPhase.APPROVED, reason or "auto mode"
    return RemediationPhase.PENDING, reason or "waits for approval"


def is_stale(record: Remediation, now: datetime, ttl: timedelta) -> bool:
    created = record.metadata.creation_timestamp
    return (
        phase_of(record) is RemediationPhase.PENDING
        and not record.spec.approved
        and created is not None
        and now - created >= ttl
    )


def component_of_record(record: Remediation, names: Names) -> Component | None:
    """The component a decision was about: its label, else (a record made before the label)
    the StatefulSet or claim its action names."""
    labelled = record.metadata.labels.get(COMPONENT_LABEL)
    if labelled in set(Component):
        return Component(labelled)
    parameters = record.spec.action.parameters
    if "statefulset" in parameters:
        return component_of_statefulset(names, parameters["statefulset"])
    if "claim" in parameters:
        return component_of_statefulset(names, claim_owner(parameters["claim"]))
    return None


def postgres_ordinal(names: Names, pod: str) -> int | None:
    """The ordinal of one of the platform's PostgreSQL pods (`<platform>-postgres-<n>`)."""
    prefix = f"{names.postgres}-"
    tail = pod.removeprefix(prefix)
    return int(tail) if pod.startswith(prefix) and tail.isdigit() else None


def postgres_primary_pod(platform: DataPlatform, names: Names) -> str | None:
    """The pod the operator renders as PostgreSQL's primary, as render/postgres.py picks it."""
    design = platform.status.design
    if design is None or not design.postgres.enabled:
        return None
    return f"{names.postgres}-{primary_of(platform, design.postgres.instances)}"


def memory_record(record: Remediation, names: Names, now: datetime) -> RemediationRecord:
    """The memory's record of a Remediation as it stands: sizes and enums, no object names.
    Its phase is the policy's (`past_decision`): a decision this version could not execute
    was turned down, it did not fail as a remedy."""
    action = record.spec.action
    return RemediationRecord.of_parts(
        record.metadata.name,
        SymptomType(record.spec.symptom.type.value),
        component_of_record(record, names),
        Plan(action=ActionType(action.type.value), parameters=action.parameters),
        phase=past_decision(record).phase,
        decided_at=record.metadata.creation_timestamp or now,
    )


def moved(
    ledger: Iterable[Remediation], phases: Mapping[str, RemediationPhase]
) -> list[Remediation]:
    """The records made or moved since `phases` (name -> phase) was taken."""
    return [r for r in ledger if phases.get(r.metadata.name) is not phase_of(r)]


def symptom_counts(symptoms: Sequence[Symptom]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in symptoms:
        counts[str(s.type)] = counts.get(str(s.type), 0) + 1
    return counts


# -- the I/O ---------------------------------------------------------------------------------------


OPEN_PHASES = frozenset(
    {RemediationPhase.PENDING, RemediationPhase.APPROVED, RemediationPhase.APPLIED}
)


def unwell(pod_status: Mapping[str, Any]) -> bool:
    """A pod worth a look now: not running, or a container not ready or waiting."""
    if pod_status.get("phase") != "Running":
        return True
    containers = pod_status.get("containerStatuses") or []
    return not containers or any(
        not c.get("ready") or "waiting" in (c.get("state") or {}) for c in containers
    )


class Ledger:
    """The platform's Remediations during one pass, each replaced as its status moves (the
    models are immutable), so every step decides from what was just written."""

    def __init__(self, records: Iterable[Remediation]) -> None:
        ordered = sorted(
            records, key=lambda r: (r.metadata.creation_timestamp or EPOCH, r.metadata.name)
        )
        self._by_name = {r.metadata.name: r for r in ordered}

    def __iter__(self) -> Iterator[Remediation]:
        return iter(list(self._by_name.values()))

    def __getitem__(self, name: str) -> Remediation:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def put(self, record: Remediation) -> None:
        self._by_name[record.metadata.name] = record

    def history(self) -> list[PastDecision]:
        return [past_decision(r) for r in self]


class Healer:
    """One pass at a time per platform: the caller holds the platform's lock."""

    def __init__(
        self,
        kube: Kube,
        reconciler: Reconciler,
        settings: HealSettings | None = None,
        thresholds: Thresholds | None = None,
        probe_settings: ProbeSettings | None = None,
        *,
        memory: PlatformMemory | None = None,
    ) -> None:
        self.kube = kube
        self.reconciler = reconciler
        self.settings = settings or HealSettings()
        self.memory = memory if memory is not None else PlatformMemory(None, MemorySettings())
        # Platforms whose last pass saw no symptom and left nothing open: while they stay
        # Ready, the timer has nothing to look for (a pod going wrong makes them not Ready,
        # and its event runs a pass).
        self.quiet: dict[str, float] = {}  # platform -> when (monotonic) it was found quiet
        self.thresholds = thresholds or Thresholds()
        # Platforms with a pass already queued on the lock: pod events coalesce into it.
        self.waiting: set[str] = set()
        # Platforms with a remedy Applied and not yet verified: a pod of theirs turning healthy
        # is worth a pass (the verification), not only one turning unwell.
        self.verifying: set[str] = set()
        self._active: dict[str, dict[str, Symptom]] = {}
        self._storage_classes_refused = False
        self.probes = DatabaseProbes(
            kube, probe_settings, cluster_domain=reconciler.render_config.cluster_domain
        )

    def is_quiet(self, key: str) -> bool:
        """Found quiet at a pass less than `quiet_recheck_seconds` ago, and no drift put back
        since (the reconcile's, for the healer to record)."""
        since = self.quiet.get(key)
        return (
            since is not None
            and time.monotonic() - since < self.settings.quiet_recheck_seconds
            and key not in self.reconciler.drift
        )

    async def heal(self, platform: DataPlatform) -> list[Event]:
        now = datetime.now(UTC)
        observation, ledger = await asyncio.gather(self.observe(platform), self.records(platform))
        phases = {r.metadata.name: phase_of(r) for r in ledger}
        autonomy = autonomy_of(platform, self.reconciler.settings.autonomy_default_mode)
        events = await self.progress(platform, observation, ledger, autonomy, now)
        symptoms = detect(observation, now, self.thresholds)
        key = platform_key(platform)
        if symptoms or any(phase_of(r) in OPEN_PHASES for r in ledger):
            self.quiet.pop(key, None)
        else:
            self.quiet[key] = time.monotonic()
        appeared = [s for s in symptoms if s.key not in self._active.get(key, {})]
        events += self.track(platform, symptoms)
        history = ledger.history()
        diagnoses = diagnose(
            observation,
            symptoms,
            now=now,
            history=history,
            limits=limits_of(platform),
            rank=await self.ranking(symptoms),
        )
        if platform.spec.planner.provider != PlannerProvider.BUILTIN:
            decisions = decide(diagnoses, autonomy=autonomy, history=history, now=now)
            diagnoses = await self.with_model(platform, observation, decisions, history, now)
        for decision in decide(diagnoses, autonomy=autonomy, history=history, now=now):
            if decision.outcome is Outcome.SUPPRESSED or decision.diagnosis.action is None:
                continue  # a symptom without a remedy is told by its SymptomDetected Event
            events += await self.record(platform, decision, ledger, autonomy, now)
        await self.remember(platform, appeared, moved(ledger, phases), now)
        if any(phase_of(r) is RemediationPhase.APPLIED for r in ledger):
            self.verifying.add(key)
        else:
            self.verifying.discard(key)
        return events + await self.report_healing(platform, ledger, now)

    async def with_model(
        self,
        platform: DataPlatform,
        observation: Observation,
        decisions: Sequence[Decision],
        history: Sequence[PastDecision],
        now: datetime,
    ) -> list[Diagnosis]:
        """The rules' diagnoses, with the platform's model choosing instead for each symptom
        about to become a new decision (so the model is asked once per symptom, not per
        pass). The model picks among the actions the playbook offers for the symptom, with
        the playbook's parameters; any failure of it, or no answer within the planner's
        deadline, leaves the rules' choice."""
        diagnoses = [d.diagnosis for d in decisions]
        fresh = [
            d.diagnosis.symptom
            for d in decisions
            if d.outcome is not Outcome.SUPPRESSED and d.diagnosis.action is not None
        ]
        if not fresh:
            return diagnoses
        # LangGraph and the SDKs load on first use: operators without models never pay them.
        from duet_agents.healer.graph import diagnose_all_with_model  # noqa: PLC0415

        settings = self.reconciler.settings
        model = await self.reconciler.platform_model(platform, "healer")
        async with contextlib.aclosing(model):
            try:
                chosen = await asyncio.wait_for(
                    diagnose_all_with_model(
                        observation,
                        fresh,
                        model,
                        now=now,
                        thresholds=self.thresholds,
                        limits=limits_of(platform),
                        history=history,
                        llm_prices=settings.token_prices(),
                    ),
                    timeout=settings.planner_timeout_seconds,
                )
            except TimeoutError:
                log.warning(
                    "%s/%s: the model gave no diagnosis within %g s; the rules decide",
                    platform.metadata.namespace, platform.metadata.name,
                    settings.planner_timeout_seconds,
                )  # fmt: skip
                return diagnoses
        by_symptom = {c.diagnosis.symptom.key: c.diagnosis for c in chosen}
        return [by_symptom.get(d.symptom.key, d) for d in diagnoses]

    async def ranking(self, symptoms: Sequence[Symptom]) -> Ranker | None:
        """The memory's order of the rules' actions, for these symptoms; None without it."""
        if not self.memory.enabled or not symptoms:
            return None
        return ranker(await self.memory.action_stats((s.type, s.component) for s in symptoms))

    async def remember(
        self,
        platform: DataPlatform,
        appeared: Sequence[Symptom],
        changed: Sequence[Remediation],
        now: datetime,
    ) -> None:
        """What this pass saw and did, in the memory: symptoms as outcomes, each decision
        made or moved as its record."""
        if not self.memory.enabled:
            return
        names = self.reconciler.names(platform)
        await self.memory.record_outcomes(
            platform, [symptom_outcome(s.type, s.component, now) for s in appeared]
        )
        await self.memory.record_remediations(
            platform, [memory_record(r, names, now) for r in changed]
        )

    def forget(self, namespace: str, name: str) -> None:
        """The platform is gone: its gauges with it."""
        key = f"{namespace}/{name}"
        self._active.pop(key, None)
        self.quiet.pop(key, None)
        self.verifying.discard(key)
        self.probes.forget(namespace, name)
        metrics.set_symptoms(key, {})
        metrics.set_wal_spool(namespace, name, [])

    # -- observe -------------------------------------------------------------------------

    async def observe(self, platform: DataPlatform) -> Observation:
        namespace = platform.metadata.namespace or "default"
        selector = f"{PLATFORM_LABEL}={platform.metadata.name}"
        pods, sets, claims, classes = await asyncio.gather(
            self.kube.list_objects("v1", "Pod", namespace, selector),
            self.kube.list_objects("apps/v1", "StatefulSet", namespace, selector),
            self.kube.list_objects("v1", "PersistentVolumeClaim", namespace, selector),
            self.storage_classes(),
        )
        pods = [p for p in pods if has_component(p)]
        # Events are evidence, and carry no platform label: the whole namespace's would be
        # listed (thousands, with many platforms in one), so only when a pod is unwell.
        events: list[dict[str, Any]] = []
        if any(unwell(p.get("status") or {}) for p in pods):
            events = await self.kube.list_objects("v1", "Event", namespace, "")
        pod_names = {p["metadata"]["name"] for p in pods}
        readings = await self.probes.observe(platform, pods)
        metrics.set_wal_spool(namespace, platform.metadata.name, readings.wal_spool)
        primary = postgres_primary_pod(platform, self.reconciler.names(platform))
        return Observation(
            platform=platform.metadata.name,
            namespace=namespace,
            pods=[pod_observation(p, postgres_primary=primary) for p in pods],
            statefulsets=[statefulset_observation(s) for s in sets if has_component(s)],
            claims=[claim_observation(c, storage_classes=classes) for c in claims],
            events=[
                event_observation(e)
                for e in events
                if (e.get("involvedObject") or {}).get("kind") == "Pod"
                and (e.get("involvedObject") or {}).get("name") in pod_names
            ],
            volumes=readings.volumes,
            clickhouse_replicas=readings.clickhouse_replicas,
            postgres_lag=readings.postgres_lag,
            logs=readings.logs,
            probes=readings.probes,
            drift=self.reconciler.take_drift(platform_key(platform)),
        )

    async def storage_classes(self) -> dict[str, Manifest]:
        """By name, for whether a claim may grow. Without the right to read them (a chart
        installed for some namespaces only), expansion is unknown and expandStorage is not
        proposed; asked once per process."""
        if self._storage_classes_refused:
            return {}
        try:
            found = await self.kube.list_objects("storage.k8s.io/v1", "StorageClass", None, "")
        except KubeError as e:
            if e.code != 403:
                raise
            self._storage_classes_refused = True
            log.info("StorageClasses cannot be read (403): volume expansion counts as unknown")
            return {}
        return {c["metadata"]["name"]: c for c in found}

    async def records(self, platform: DataPlatform) -> Ledger:
        found = await self.kube.list_objects(
            API_VERSION,
            KIND,
            platform.metadata.namespace or "default",
            f"{PLATFORM_LABEL}={platform.metadata.name}",
        )
        return Ledger(Remediation.model_validate(r) for r in found)

    # -- progress the records ------------------------------------------------------------

    async def progress(
        self,
        platform: DataPlatform,
        observation: Observation,
        ledger: Ledger,
        autonomy: Autonomy,
        now: datetime,
    ) -> list[Event]:
        events: list[Event] = []
        ttl = timedelta(seconds=self.settings.pending_ttl_seconds)
        for record in ledger:
            name, phase = record.metadata.name, phase_of(record)
            if record.status.phase is None:
                events += await self.start(platform, name, ledger, autonomy, now)
            elif phase is RemediationPhase.PENDING and record.spec.approved:
                events.append(await self.move(ledger, name, RemediationPhase.APPROVED, "approved"))
                events += await self.run_approved(platform, name, ledger, autonomy, now)
            elif is_stale(record, now, ttl):
                message = f"not approved within {ttl}; a new decision follows if still needed"
                events.append(await self.move(ledger, name, RemediationPhase.EXPIRED, message))
            elif phase is RemediationPhase.APPROVED:
                events += await self.run_approved(platform, name, ledger, autonomy, now)
            elif phase is RemediationPhase.APPLIED:
                events += await self.verify(name, ledger, observation, now)
        return events

    async def start(
        self, platform: DataPlatform, name: str, ledger: Ledger, autonomy: Autonomy, now: datetime
    ) -> list[Event]:
        phase, message = first_phase(ledger[name])
        events = [await self.move(ledger, name, phase, message)]
        if phase is RemediationPhase.APPROVED:
            events += await self.run_approved(platform, name, ledger, autonomy, now)
        return events

    async def run_approved(
        self, platform: DataPlatform, name: str, ledger: Ledger, autonomy: Autonomy, now: datetime
    ) -> list[Event]:
        """Apply an Approved record when `approved_gate` lets it through, else say why not."""
        record = ledger[name]
        gate = approved_gate(past_decision(record), autonomy=autonomy, history=ledger.history())
        if not gate.allowed:
            message = f"approved; waits: {gate.reason}"
            if record.status.message != message:
                await self.write(ledger, name, message=message)
            return []
        action = ActionType(record.spec.action.type.value)
        if action not in EXECUTABLE:
            message = (
                f"this operator version cannot execute {action} yet: nothing was changed;"
                " carry it out by hand if the diagnosis still holds"
            )
            condition = Condition(
                type=APPLIED_CONDITION,
                status=ConditionStatus.FALSE,
                reason=NOT_EXECUTABLE,
                message=message,
                last_transition_time=now,
            )
            return [
                await self.move(
                    ledger, name, RemediationPhase.FAILED, message, conditions=[condition]
                )
            ]
        try:
            message, extra = await self.execute(platform, record, action)
        except (KubeError, RefusedError) as e:
            message = f"{action} failed: {e}"
            return [await self.move(ledger, name, RemediationPhase.FAILED, message)]
        applied = await self.move(ledger, name, RemediationPhase.APPLIED, message, applied_at=now)
        return [*extra, applied]

    async def execute(
        self, platform: DataPlatform, record: Remediation, action: ActionType
    ) -> tuple[str, list[Event]]:
        """Carry out an approved decision; KubeError, or RefusedError with the reason, when it
        cannot be. Each branch is idempotent: run again after an operator restart, it does
        not repeat what was done."""
        parameters = record.spec.action.parameters
        if action is ActionType.RESTART_POD:
            name, uid = parameters["pod"], parameters.get("uid", "")
            if not await self.delete_if_same(platform, "v1", "Pod", name, uid):
                return f"pod {name} was already recreated", []
            return f"deleted pod {name}; its StatefulSet recreates it", []
        if action is ActionType.REPLACE_REPLICA:
            return await self.replace_replica(platform, record), []
        if action is ActionType.PROMOTE_POSTGRES_REPLICA:
            return await self.promote_postgres(platform, record)
        adjustment = adjustment_for(record, self.reconciler.names(platform), datetime.now(UTC))
        if adjustment is not None:
            return await self.raise_figure(platform, adjustment)
        outcome = await self.reconciler.reconcile(platform)
        if outcome.apply_error:
            raise KubeError(0, "ApplyFailed", outcome.apply_error, parameters.get("target", ""))
        return "applied the platform's objects as rendered", list(outcome.events)

    async def delete_if_same(
        self, platform: DataPlatform, api_version: str, kind: str, name: str, uid: str
    ) -> bool:
        """Delete the object if it is still the one the decision was made about. Only the
        platform's own objects: a Remediation is a request to the operator, and whoever may
        create one must not reach other objects through it."""
        namespace = platform.metadata.namespace or "default"
        found = await self.kube.get(api_version, kind, name, namespace)
        if found is None or (uid and found["metadata"].get("uid") != uid):
            return False
        owner = (found["metadata"].get("labels") or {}).get(PLATFORM_LABEL)
        if owner != platform.metadata.name:
            raise RefusedError(f"{kind} {name} is not one of platform {platform.metadata.name}'s")
        await self.kube.delete(api_version, kind, name, namespace)
        return True

    async def replace_replica(self, platform: DataPlatform, record: Remediation) -> str:
        """The claim first, then the pod: the claim, protected while the pod uses it, goes
        when the pod goes, and the StatefulSet makes both anew; the replica then copies the
        data back from its peers. Approved by a person (it deletes that replica's copy)."""
        parameters = record.spec.action.parameters
        claim, pod = parameters["claim"], parameters["pod"]
        deleted_claim = await self.delete_if_same(
            platform, "v1", "PersistentVolumeClaim", claim, parameters.get("claimUid", "")
        )
        deleted_pod = await self.delete_if_same(
            platform, "v1", "Pod", pod, parameters.get("uid", "")
        )
        if not (deleted_claim or deleted_pod):
            return f"claim {claim} and pod {pod} were already recreated"
        return (
            f"deleted claim {claim} and pod {pod}; the StatefulSet recreates both and the "
            "replica copies its data from its peers"
        )

    async def promote_postgres(
        self, platform: DataPlatform, record: Remediation
    ) -> tuple[str, list[Event]]:
        """Make the standby `to` the PostgreSQL primary: promoted at once (`pg_promote()`),
        then named in `status.postgresPrimary`, which the read-write Service and every pod's
        entrypoint follow (the lost primary, when it comes back, is rewound onto the new
        history). Idempotent: a standby already promoted is not promoted again."""
        names = self.reconciler.names(platform)
        standby = record.spec.action.parameters["to"]
        ordinal = postgres_ordinal(names, standby)
        design = platform.status.design
        if design is None or ordinal is None or ordinal >= design.postgres.instances:
            raise RefusedError(f"{standby} is not one of the platform's PostgreSQL instances")
        try:
            url = await self.probes.postgres_url(names, standby)
            promoted = await postgres_failover.promote(url)
        except (ValueError, InvalidURLError, postgres_failover.PromotionError) as e:
            raise RefusedError(f"promoting {standby} failed: {e}") from None
        outcome = await self.reconcile_with_status(platform, postgres_primary=ordinal)
        done = "promoted" if promoted else "was already promoted"
        message = (
            f"{standby} {done} and is the primary: the read-write Service selects it, and the"
            " other instances follow it as they restart"
        )
        if outcome.apply_error:
            return f"{message}; applying that failed for now, the reconcile retries", []
        return message, list(outcome.events)

    async def reconcile_with_status(
        self, platform: DataPlatform, **fields: Any
    ) -> ReconcileOutcome:
        """The platform reconciled with these status fields changed (the healer's decisions
        that live in status: adjustments, the PostgreSQL primary). They are written first: the
        reconcile writes status only where it differs from the status it starts from."""
        status = platform.status.model_copy(update=fields)
        wire = status.wire()
        changed = [DataPlatformStatus.model_fields[name].alias or name for name in fields]
        meta = platform.metadata
        await self.kube.patch_status(
            API_VERSION,
            "DataPlatform",
            meta.name,
            meta.namespace or "default",
            {key: wire[key] for key in changed},
        )
        return await self.reconciler.reconcile(
            platform.model_copy(update={"status": status}), own_change=True
        )

    async def raise_figure(
        self, platform: DataPlatform, adjustment: Adjustment
    ) -> tuple[str, list[Event]]:
        """Raise one figure of the design: kept in status as an adjustment (a floor over every
        later planning), then the platform is reconciled with it. Refused when the spec pins
        the figure or when the design would cost more than the budget."""
        design = platform.status.design
        if design is None:
            raise RefusedError("the platform has no design to raise")
        request = platform.spec.plan_request()
        prices = self.reconciler.settings.prices
        if adjustment.field in pinned_fields(request):
            raise RefusedError(f"the spec pins {adjustment.field}: change it there")
        adjusted = adjust(design, [adjustment], request, prices)
        budget = platform.spec.budget
        if budget is not None and adjusted.estimated_monthly_cost_usd > budget.monthly_usd:
            raise RefusedError(
                f"{adjustment.field} {adjustment.value} would cost "
                f"${adjusted.estimated_monthly_cost_usd:,.2f}/month, over the budget of "
                f"${budget.monthly_usd:,.2f}: raise spec.budget.monthlyUSD or change the "
                "design by hand"
            )
        adjustments = merged(platform.status.adjustments, adjustment)
        outcome = await self.reconcile_with_status(
            platform, adjustments=adjustments, design=adjusted
        )
        error = outcome.apply_error
        if error is None:
            # The reconcile grows claims only with a new plan; this design is not one.
            error = await self.reconciler.grow_volumes(self.reconciler.names(platform), adjusted)
        before = current_value(design, adjustment.field)
        message = (
            f"{adjustment.field} {before} -> {adjustment.value} in the design "
            f"(now ${adjusted.estimated_monthly_cost_usd:,.2f}/month)"
        )
        # The raise is the design's from here on: a failed apply is retried by the platform's
        # reconcile, and the verification tells whether it got through in time.
        if error is not None:
            return f"{message}; applying it failed for now, the reconcile retries: {error}", []
        return f"{message}; applied", list(outcome.events)

    async def verify(
        self, name: str, ledger: Ledger, observation: Observation, now: datetime
    ) -> list[Event]:
        record = ledger[name]
        applied_at = record.status.applied_at or now
        action = PLAYBOOK[ActionType(record.spec.action.type.value)]
        verdict = action.verify(
            observation, record.spec.action.parameters, applied_at=applied_at, now=now
        )
        if verdict.state is VerificationState.VERIFIED:
            created = record.metadata.creation_timestamp
            if created is not None:
                metrics.MTTR.observe((now - created).total_seconds())
            phase = RemediationPhase.VERIFIED
            return [await self.move(ledger, name, phase, verdict.message, verified_at=now)]
        if verdict.state is VerificationState.FAILED:
            return [await self.move(ledger, name, RemediationPhase.FAILED, verdict.message)]
        return []

    # -- record new decisions ------------------------------------------------------------

    async def record(
        self,
        platform: DataPlatform,
        decision: Decision,
        ledger: Ledger,
        autonomy: Autonomy,
        now: datetime,
    ) -> list[Event]:
        key = decision.diagnosis.symptom.key
        events: list[Event] = []
        # Waiting under another mode: the new decision replaces it (the policy's advice).
        for old in ledger:
            if symptom_key(old) == key and phase_of(old) is RemediationPhase.PENDING:
                message = f"replaced by a decision under {autonomy.mode} mode"
                phase = RemediationPhase.EXPIRED
                events.append(await self.move(ledger, old.metadata.name, phase, message))
        name = remediation_name(platform.metadata.name, key, ledger)
        if name in ledger:
            return events  # made already, whatever the policy thought (a safety net)
        stored = await self.kube.apply(remediation_body(platform, decision, name, autonomy.mode))
        ledger.put(Remediation.model_validate(stored))
        log.info("%s: %s %s", platform_key(platform), name, decision.reason)
        return events + await self.start(platform, name, ledger, autonomy, now)

    async def report_healing(
        self, platform: DataPlatform, ledger: Ledger, now: datetime
    ) -> list[Event]:
        """The platform's Healing condition and phase, written (and told) when they change.
        Read anew: an action this pass may have reconciled the platform and written status."""
        in_progress = [
            r
            for r in ledger
            if phase_of(r) in (RemediationPhase.APPROVED, RemediationPhase.APPLIED)
        ]
        if healing_condition(platform.status, in_progress, generation=None, now=now) is None:
            return []
        meta = platform.metadata
        namespace = meta.namespace or "default"
        body = await self.kube.get(API_VERSION, "DataPlatform", meta.name, namespace)
        if body is None:
            return []
        fresh = DataPlatform.model_validate(body)
        status = healing_condition(
            fresh.status, in_progress, generation=fresh.metadata.generation, now=now
        )
        if status is None:
            return []
        await self.kube.patch_status(
            API_VERSION,
            "DataPlatform",
            meta.name,
            namespace,
            {"phase": status.phase, "conditions": [c.wire() for c in status.conditions]},
        )
        condition = find(status.conditions, ConditionType.HEALING)
        assert condition is not None
        return [Event("Normal", condition.reason, condition.message)]

    # -- writing -------------------------------------------------------------------------

    async def move(
        self,
        ledger: Ledger,
        name: str,
        phase: RemediationPhase,
        message: str,
        **fields: Any,
    ) -> Event:
        """One status step: written, counted, and told as an Event on the platform."""
        record = await self.write(ledger, name, phase=phase, message=message, **fields)
        spec = record.spec
        result = RESULTS[phase]
        platform = f"{record.metadata.namespace}/{spec.platform_ref.name}"
        action, mode = str(spec.action.type), str(spec.mode)
        metrics.REMEDIATIONS_TOTAL.labels(platform, action, mode, result).inc()
        target = spec.action.parameters.get("target", spec.symptom.object)
        kind = "Warning" if phase in WARNING_PHASES else "Normal"
        text = f"{name}: {spec.action.type} on {target}: {message}"
        return Event(kind, f"Remediation{phase}", text)

    async def write(self, ledger: Ledger, name: str, **fields: Any) -> Remediation:
        """Change the status fields given, write the status, and keep the new record."""
        record = ledger[name]
        if "message" in fields:
            fields["message"] = fields["message"][:MAX_MESSAGE_CHARS]
        fields["observed_generation"] = record.metadata.generation
        status: RemediationStatus = record.status.model_copy(update=fields)
        await self.kube.patch_status(
            API_VERSION, KIND, name, record.metadata.namespace or "default", status.wire()
        )
        updated = record.model_copy(update={"status": status})
        ledger.put(updated)
        return updated

    # -- symptoms ------------------------------------------------------------------------

    def track(self, platform: DataPlatform, symptoms: Sequence[Symptom]) -> list[Event]:
        """The gauge, and an Event when a symptom appears or clears (not on every pass)."""
        key = platform_key(platform)
        before = self._active.get(key, {})
        now = {s.key: s for s in symptoms}
        self._active[key] = now
        metrics.set_symptoms(key, symptom_counts(symptoms))
        events = [
            Event("Warning", "SymptomDetected", f"{s.key}: {s.reason}")
            for k, s in now.items()
            if k not in before
        ]
        events += [Event("Normal", "SymptomCleared", k) for k in before if k not in now]
        return events
