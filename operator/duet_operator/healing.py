"""The healer in the operator: one pass over a platform, as an ordered list of steps:

    observe -> progress (approved, applied, stale) -> detect -> diagnose -> decide -> record

The decisions are `duet_agents.healer`'s (pure); this module does their I/O. Every decision
that is not suppressed becomes a `Remediation` owned by the platform, and every status step
of one is an Event on the platform. The pure helpers (names, the body of a Remediation, the
policy's view of one) come first and are unit tested; the `Healer` class does the calls.

Only restartPod and reapply are executed by this version; an approved or automatic decision
for another action is moved to Failed saying so, and counts for the policy as turned down (its
cooldown starts), so it is not proposed again on every pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
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
from duet_agents.healer.readings import (
    claim_observation,
    event_observation,
    has_component,
    pod_observation,
    statefulset_observation,
)
from duet_operator import metrics
from duet_operator.kube.client import Kube, KubeError, Manifest
from duet_operator.models import API_VERSION, GROUP, DataPlatform
from duet_operator.models.common import Condition, ConditionStatus
from duet_operator.models.remediation import Remediation, RemediationPhase, RemediationStatus
from duet_operator.reconcile import Event, Reconciler
from duet_operator.render.naming import PLATFORM_LABEL
from duet_operator.render.objects import owner_reference

log = logging.getLogger("duet.healer")

KIND = "Remediation"
SYMPTOM_LABEL = f"{GROUP}/symptom"
# What the policy decided when the record was made, so that a record whose status was never
# written (the operator stopped between the two writes) still starts the way it was meant to.
OUTCOME_ANNOTATION = f"{GROUP}/outcome"
REASON_ANNOTATION = f"{GROUP}/outcome-reason"
EXECUTABLE = frozenset({ActionType.RESTART_POD, ActionType.REAPPLY})
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


def autonomy_of(platform: DataPlatform) -> Autonomy:
    spec = platform.spec.autonomy
    return Autonomy(
        mode=AutonomyMode(spec.mode.value),
        max_actions_per_hour=spec.max_actions_per_hour,
        actions=frozenset(ActionType(a.value) for a in spec.actions),
    )


def remediation_body(platform: DataPlatform, decision: Decision, name: str) -> Manifest:
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
            "mode": str(platform.spec.autonomy.mode),
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


def platform_key(platform: DataPlatform) -> str:
    return f"{platform.metadata.namespace}/{platform.metadata.name}"


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
    ) -> None:
        self.kube = kube
        self.reconciler = reconciler
        self.settings = settings or HealSettings()
        # Platforms whose last pass saw no symptom and left nothing open: while they stay
        # Ready, the timer has nothing to look for (a pod going wrong makes them not Ready,
        # and its event runs a pass).
        self.quiet: set[str] = set()
        self.thresholds = thresholds or Thresholds()
        # Platforms with a pass already queued on the lock: pod events coalesce into it.
        self.waiting: set[str] = set()
        self._active: dict[str, dict[str, Symptom]] = {}
        self._storage_classes_refused = False

    async def heal(self, platform: DataPlatform) -> list[Event]:
        now = datetime.now(UTC)
        observation, ledger = await asyncio.gather(self.observe(platform), self.records(platform))
        autonomy = autonomy_of(platform)
        events = await self.progress(platform, observation, ledger, autonomy, now)
        symptoms = detect(observation, now, self.thresholds)
        key = f"{platform.metadata.namespace}/{platform.metadata.name}"
        if symptoms or any(phase_of(r) in OPEN_PHASES for r in ledger):
            self.quiet.discard(key)
        else:
            self.quiet.add(key)
        events += self.track(platform, symptoms)
        history = ledger.history()
        diagnoses = diagnose(observation, symptoms, now=now, history=history)
        for decision in decide(diagnoses, autonomy=autonomy, history=history, now=now):
            if decision.outcome is Outcome.SUPPRESSED or decision.diagnosis.action is None:
                continue  # a symptom without a remedy is told by its SymptomDetected Event
            events += await self.record(platform, decision, ledger, autonomy, now)
        return events

    def forget(self, namespace: str, name: str) -> None:
        """The platform is gone: its gauges with it."""
        key = f"{namespace}/{name}"
        self._active.pop(key, None)
        self.quiet.discard(key)
        metrics.set_symptoms(key, {})

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
        return Observation(
            platform=platform.metadata.name,
            namespace=namespace,
            pods=[pod_observation(p) for p in pods],
            statefulsets=[statefulset_observation(s) for s in sets if has_component(s)],
            claims=[claim_observation(c, storage_classes=classes) for c in claims],
            events=[
                event_observation(e)
                for e in events
                if (e.get("involvedObject") or {}).get("kind") == "Pod"
                and (e.get("involvedObject") or {}).get("name") in pod_names
            ],
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
        except KubeError as e:
            message = f"{action} failed: {e}"
            return [await self.move(ledger, name, RemediationPhase.FAILED, message)]
        applied = await self.move(ledger, name, RemediationPhase.APPLIED, message, applied_at=now)
        return [*extra, applied]

    async def execute(
        self, platform: DataPlatform, record: Remediation, action: ActionType
    ) -> tuple[str, list[Event]]:
        parameters = record.spec.action.parameters
        namespace = platform.metadata.namespace or "default"
        if action is ActionType.RESTART_POD:
            name, uid = parameters["pod"], parameters.get("uid", "")
            pod = await self.kube.get("v1", "Pod", name, namespace)
            # Idempotent: a pod already replaced (by this action before a restart of the
            # operator, or by anything else) is not deleted again.
            if pod is None or (uid and pod["metadata"].get("uid") != uid):
                return f"pod {name} was already recreated", []
            await self.kube.delete("v1", "Pod", name, namespace)
            return f"deleted pod {name}; its StatefulSet recreates it", []
        outcome = await self.reconciler.reconcile(platform)
        if outcome.apply_error:
            raise KubeError(0, "ApplyFailed", outcome.apply_error, parameters.get("target", ""))
        return "applied the platform's objects as rendered", list(outcome.events)

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
        stored = await self.kube.apply(remediation_body(platform, decision, name))
        ledger.put(Remediation.model_validate(stored))
        log.info("%s: %s %s", platform_key(platform), name, decision.reason)
        return events + await self.start(platform, name, ledger, autonomy, now)

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
        metrics.REMEDIATIONS_TOTAL.labels(str(spec.action.type), str(spec.mode), result).inc()
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
