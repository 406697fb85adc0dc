"""One reconcile of a DataPlatform, as an ordered list of named steps:

    plan -> credentials -> render -> apply -> observe -> report

Every step but apply and observe is pure or reads only; `report` writes status once, and only
when it changed. The same reconcile serves create, update, resume and the resync timer; a
StatefulSet's change runs only `observe -> report`, unless it shows drift (a StatefulSet
missing, or scaled away from the design), which takes the whole reconcile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from duet_agents.healer.observations import DriftObservation
from duet_agents.llm.base import Usage
from duet_agents.memory import Outcome as MemoryOutcome
from duet_agents.memory import lessons_context
from duet_agents.planner import capacity
from duet_agents.planner.errors import PlanningError
from duet_agents.planner.models import PlatformDesign
from duet_operator import credentials, metrics, rollout
from duet_operator.drift import STAMP, drift_of, stamp, unchanged
from duet_operator.kube.client import Kube, KubeError, decoded
from duet_operator.llm_metrics import Instrumented
from duet_operator.membership import keeper_step
from duet_operator.models import API_VERSION, DataPlatform
from duet_operator.models.dataplatform import (
    DataPlatformStatus,
    DeletionPolicy,
    Endpoints,
    Phase,
    PlannerProvider,
    PlannerStatus,
)
from duet_operator.observe import (
    Readiness,
    Replicas,
    expected_statefulsets,
    readiness,
    statefulset_components,
)
from duet_operator.planning import PlanOutcome, cached_plan, plan_platform
from duet_operator.platform_memory import PlatformMemory, first_ready_seconds, platform_key
from duet_operator.probes import DatabaseProbes, ProbeSettings
from duet_operator.render import backup, clickhouse, postgres
from duet_operator.render.config import PlatformSecrets, RenderConfig
from duet_operator.render.naming import PLATFORM_LABEL, Names
from duet_operator.render.platform import build_platform
from duet_operator.restore import RestoreReader, RestoreReading, RestoreState, restore_step, wanted
from duet_operator.schema_sync import SchemaState, SchemaSync
from duet_operator.settings import OperatorSettings
from duet_operator.status import (
    ConditionType,
    Reason,
    is_false,
    is_true,
    phase_of,
    set_condition,
)
from duet_operator.volumes import (
    claim_growth,
    keep_immutable_fields,
    templates_behind,
    wanted_sizes,
)

if TYPE_CHECKING:
    from duet_agents.planner.graph import ModelPlan

# Workloads are applied once what their pods mount is: no pod starts before its Secrets
# and ConfigMaps exist.
MOUNTED = ("Secret", "ConfigMap")
WORKLOADS = ("StatefulSet", "CronJob", "Job", "Deployment")
NOT_BACKUPS = f"app.kubernetes.io/name!={backup.APP}"
# Every kind the renderers produce, as listed to compare with what is stored.
CHILD_KINDS = (
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "StatefulSet"),
    ("policy/v1", "PodDisruptionBudget"),
    ("batch/v1", "CronJob"),
)


def _key(manifest: dict[str, Any]) -> tuple[str, str]:
    return manifest["kind"], manifest["metadata"]["name"]


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


# Objects of one platform kept for the healer between its passes: a storm of edits is a few.
MAX_DRIFT = 16


@dataclass
class Outcome:
    status: DataPlatformStatus
    events: list[Event] = field(default_factory=list)
    apply_error: str | None = None
    # As last observed; None when nothing was (no design yet).
    replicas: Mapping[str, Replicas] | None = None
    # Worth a status refresh soon even if no child changes (a schema replay settling).
    recheck: bool = False


class Reconciler:
    def __init__(
        self, kube: Kube, settings: OperatorSettings, memory: PlatformMemory | None = None
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.render_config = settings.render_config()
        # Lessons before planning, and what was designed and how it went (docs/memory.md).
        self.memory = memory or PlatformMemory(None, settings.memory)
        # Objects someone else changed or deleted, put back by a reconcile, by platform
        # (`namespace/name`), until the healer takes them as its Drift symptoms.
        self.drift: dict[str, list[DriftObservation]] = {}
        # The stamp this process last applied to each object, by platform: what an object
        # should still carry for a difference to be someone else's doing.
        self.applied_stamps: dict[str, dict[tuple[str, str], str]] = {}
        probes = DatabaseProbes(kube, ProbeSettings(), settings.render_config().cluster_domain)
        self.schema = SchemaSync(kube, probes)
        self.restorer = RestoreReader(kube)
        self.backup_config = settings.backup_config()

    def take_drift(self, key: str) -> list[DriftObservation]:
        return self.drift.pop(key, [])

    def names(self, platform: DataPlatform) -> Names:
        return Names(
            platform.metadata.name,
            platform.metadata.namespace or "default",
            self.render_config.cluster_domain,
        )

    async def reconcile(self, platform: DataPlatform, *, own_change: bool = False) -> Outcome:
        """`own_change`: the caller changed the design itself (the healer's raised figures,
        in status), so what differs from the stored objects is not someone else's drift."""
        names = self.names(platform)
        planned = await self.plan(platform)
        design = planned.design
        if design is None:
            return await self.report(platform, planned, None, None)
        stored, reading = await asyncio.gather(
            self.stored_children(names), self.read_restore(platform)
        )
        passwords = await self.load_credentials(names, stored)
        keeper = keeper_step(
            design.clickhouse.keeper.replicas, stored.get(("StatefulSet", names.keeper))
        )
        stored_statefulsets = [o for (kind, _), o in stored.items() if kind == "StatefulSet"]
        # Before rendering: PostgreSQL's StatefulSet carries the restore step while it is due.
        restore = self.restore_state(platform, design, stored_statefulsets, reading)
        rendered = restored_render(
            build_platform(
                platform, design, self.render_config, passwords,
                keeper_members=keeper.members, keeper_joining=keeper.joining,
                backup_config=self.backup_config,
            ),
            platform, design, self.render_config, restore,
        )  # fmt: skip
        # Fields fixed at a StatefulSet's creation (claim templates) are sent as they are;
        # the stamp then matches what is stored, and an unchanged object is not sent at all.
        desired = [stamp(m) for m in keep_immutable_fields(rendered, stored_statefulsets)]
        stale = [m for m in desired if not unchanged(m, stored.get(_key(m)))]
        # The restore step coming and going from PostgreSQL's StatefulSet is the operator's own.
        own_change |= restore is not None or any(map(postgres.restoring, stored_statefulsets))
        if stale and not planned.changed and not own_change and self.provisioned(platform):
            self.note_drift(platform, stale, stored)
        # Claims only change size with the design, and grow beside the apply: they are the
        # StatefulSets' claims, not their templates. A failed growth leaves Provisioned
        # False, which brings it back here on the retry.
        growing = planned.changed or not self.provisioned(platform)
        (applied, apply_error), growth_error = await asyncio.gather(
            self.apply(stale), self.grow_volumes(names, design) if growing else _no_error()
        )
        apply_error = apply_error or growth_error
        stamps = self.applied_stamps.setdefault(platform_key(platform), {})
        for manifest in applied:
            stamps[_key(manifest)] = manifest["metadata"].get("annotations", {}).get(STAMP, "")
        if apply_error is None and restore is not None and restore.manifests:
            apply_error = (await self.apply(restore.manifests))[1]
        # Server-side apply answers with the object as stored, status included: with what
        # was listed before, that is the observation, no second read needed.
        current = stored | {_key(m): m for m in applied}
        if apply_error is not None:
            current = await self.stored_children(names)
        statefulsets = [o for (kind, _), o in current.items() if kind == "StatefulSet"]
        observed = self.observe_statefulsets(names, design, statefulsets)
        # ClickHouse pods on an older template restart host by host (rollout.py).
        rolled = await rollout.roll(
            self.kube, names, design, statefulsets, platform,
            probe_settings=self.schema.probes.settings,
        )  # fmt: skip
        observed = rolled.readiness(observed)
        if not keeper.done and not observed.ready:
            observed = replace(observed, rolling=True, message=keeper.message())
        # Not while a restore makes the tables: a host between two would look lacking.
        settled = observed.ready and (restore is None or restore.restored)
        schema = await self.schema.check(names, design, statefulsets, ready=settled)
        outcome = await self.report(
            platform, planned, observed, apply_error, schema=schema, restore=restore
        )
        if keeper.stepped and apply_error is None:
            outcome.events.append(Event("Normal", "KeeperMembership", keeper.message()))
        return rolled_outcome(outcome, rolled)

    def note_drift(
        self,
        platform: DataPlatform,
        stale: list[dict[str, Any]],
        stored: Mapping[tuple[str, str], dict[str, Any]],
    ) -> None:
        """Keep, for the healer, what is about to be put back that the operator did not
        change itself (its design and its rendering are the same as when it was applied)."""
        found = []
        stamps = self.applied_stamps.get(platform_key(platform), {})
        for manifest in stale:
            key = _key(manifest)
            differences = drift_of(manifest, stored.get(key), stamps.get(key))
            if differences is not None:
                name = manifest["metadata"]["name"]
                found.append(
                    DriftObservation(kind=manifest["kind"], name=name, differences=differences)
                )
        if found:
            platform_drift = self.drift.get(platform_key(platform), [])
            kept = {(d.kind, d.name): d for d in [*platform_drift, *found]}
            self.drift[platform_key(platform)] = list(kept.values())[-MAX_DRIFT:]

    def forget(self, namespace: str, name: str) -> None:
        """The platform is gone: what this process kept of it, with it."""
        self.drift.pop(f"{namespace}/{name}", None)
        self.applied_stamps.pop(f"{namespace}/{name}", None)
        self.schema.forget(f"{namespace}/{name}")

    @staticmethod
    def provisioned(platform: DataPlatform) -> bool:
        return is_true(platform.status.conditions, ConditionType.PROVISIONED)

    async def refresh(self, platform: DataPlatform) -> Outcome:
        """Status only, from the children as they are now (a StatefulSet changed)."""
        design = platform.status.design
        if design is None:
            return Outcome(platform.status)
        names = self.names(platform)
        statefulsets = await self.statefulsets(names)
        observed = self.observe_statefulsets(names, design, statefulsets)
        restore = self.restore_state(
            platform, design, statefulsets, await self.read_restore(platform)
        )
        # The restore Job to make, or the restore step to add or drop: a full reconcile.
        if observed.drifted or (
            restore is not None and (restore.manifests or restore.rerender(statefulsets))
        ):
            return await self.reconcile(platform)
        # A pod Ready, or gone, may let the next host of a rollout restart.
        rolled = await rollout.roll(
            self.kube, names, design, statefulsets, platform,
            probe_settings=self.schema.probes.settings,
        )  # fmt: skip
        observed = rolled.readiness(observed)
        # A replica added after its claims were grown gets a claim of the template's size,
        # grown here once it is bound (its StatefulSet's status changes as it comes up).
        if templates_behind(wanted_sizes(names, design), statefulsets):
            await self.grow_volumes(names, design)
        # Not while a restore makes the tables: a host between two would look lacking.
        settled = observed.ready and (restore is None or restore.restored)
        schema = await self.schema.check(names, design, statefulsets, ready=settled)
        planned = PlanOutcome(
            design, platform.status.plan_hash, True, Reason.DESIGNED, "", changed=False
        )
        outcome = await self.report(
            platform, planned, observed, None, keep_planned=True, schema=schema, restore=restore
        )
        return rolled_outcome(outcome, rolled)

    # -- steps ---------------------------------------------------------------------------

    async def plan(self, platform: DataPlatform) -> PlanOutcome:
        """The design for the spec. A model is asked only when the spec changed since the
        design in force was made: never on a resync or an operator restart."""
        prices = self.settings.prices
        cached = cached_plan(platform, prices)
        if cached is not None:
            return cached
        # Looked up only when really planning: a lesson learnt later never redesigns a
        # platform whose spec did not change.
        lessons = await self.memory.lessons_for(platform.spec.plan_request())
        policy = self.settings.memory.policy
        proposal = None
        if platform.spec.planner.provider != PlannerProvider.BUILTIN:
            try:
                proposal = await self.ask_model(platform, lessons_context(lessons))
            except PlanningError as e:
                # The built-in planner refused too (an infeasible budget): nothing to fall
                # back to.
                return PlanOutcome(
                    platform.status.design, platform.status.plan_hash, False, Reason(e.reason),
                    str(e), False,
                )  # fmt: skip
        planned = plan_platform(
            platform, prices, proposal=proposal, lessons=lessons, memory_policy=policy
        )
        if planned.changed and planned.design is not None:
            await self.memory.record_design(platform, planned.design)
        return planned

    async def ask_model(
        self, platform: DataPlatform, lessons: Sequence[Mapping[str, Any]] = ()
    ) -> ModelPlan:
        """The model's checked design, or the built-in one with the reason; `lessons` (the
        memory's, as context) go into its planning data. Never raises for a model's failure
        (a missing key, a timeout, nonsense), only for the built-in planner's own refusal."""
        # LangGraph loads here, on the first model planning: an operator whose platforms all
        # use the built-in planner never pays its memory (nor the SDKs', platform_model).
        from duet_agents.planner.graph import ModelPlan, plan_with_model  # noqa: PLC0415

        provider = str(platform.spec.planner.provider)
        model_name = self.model_name(platform)
        request = platform.spec.plan_request()
        token_prices = self.settings.token_prices()
        model = await self.platform_model(platform, "planner")
        async with contextlib.aclosing(model):
            try:
                plan: ModelPlan = await asyncio.wait_for(
                    plan_with_model(
                        request,
                        model,
                        prices=self.settings.prices,
                        llm_prices=token_prices,
                        lessons=lessons,
                    ),
                    timeout=self.settings.planner_timeout_seconds,
                )
            except TimeoutError:
                # The calls cut short leave no usage to count: tokens and cost read 0.
                metrics.PLANNER_FALLBACKS.labels("deadline").inc()
                return ModelPlan(
                    design=capacity.plan(request, self.settings.prices),
                    provider=provider,
                    model=model_name,
                    usage=Usage(),
                    cost_usd=Decimal(0),
                    price_known=False,
                    attempts=0,
                    fallback_reason=(
                        f"no design within {self.settings.planner_timeout_seconds:g} s"
                    ),
                    fallback_kind="deadline",
                )
        if plan.fallback_kind is not None:
            metrics.PLANNER_FALLBACKS.labels(plan.fallback_kind).inc()
        return plan

    def model_name(self, platform: DataPlatform) -> str:
        spec = platform.spec.planner
        return spec.model or self.settings.planner_default_models.get(str(spec.provider), "")

    async def platform_model(self, platform: DataPlatform, agent: str) -> Instrumented:
        """The chat model the platform's spec.planner names, counted under `agent`: the
        planner's, and the healer's when it diagnoses with a model. The caller closes it."""
        # The model SDKs load here, on first use (~100 MB an operator of built-in platforms
        # never pays).
        from duet_agents.llm.factory import chat_model  # noqa: PLC0415

        spec = platform.spec.planner
        api_key = None
        if spec.secret_ref is not None:
            data = await self.kube.secret_data(
                spec.secret_ref.name, platform.metadata.namespace or "default"
            )
            # Missing, the SDK finds no key and the first call fails, saying so.
            api_key = (data or {}).get(spec.secret_ref.key) or None
        model = chat_model(
            str(spec.provider), self.model_name(platform), api_key=api_key, base_url=spec.base_url
        )
        return Instrumented(model, agent, self.settings.token_prices())

    async def load_credentials(
        self, names: Names, stored: Mapping[tuple[str, str], dict[str, Any]]
    ) -> PlatformSecrets:
        """The platform's passwords: read back from its Secrets, generated only where missing.

        From the Secrets just listed; a Secret the list lacks (a new platform's, or one whose
        labels were edited away) is read by name before anything is generated, so that a
        lost label can never replace passwords the databases still use."""

        async def data(name: str) -> dict[str, str] | None:
            listed = stored.get(("Secret", name))
            if listed is None:
                return await self.kube.secret_data(name, names.namespace)
            return decoded(listed)

        ch, pg = await asyncio.gather(
            data(names.clickhouse_credentials), data(names.postgres_credentials)
        )
        return credentials.fill(ch, pg)

    async def stored_children(self, names: Names) -> dict[tuple[str, str], dict[str, Any]]:
        """The platform's objects as stored, by (kind, name): one labelled LIST per kind."""
        selector = f"{PLATFORM_LABEL}={names.platform}"
        lists = await asyncio.gather(
            *(self.kube.list_objects(v, k, names.namespace, selector) for v, k in CHILD_KINDS)
        )
        return {
            (kind, obj["metadata"]["name"]): obj
            for (_, kind), items in zip(CHILD_KINDS, lists, strict=True)
            for obj in items
        }

    async def apply(
        self, manifests: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Apply concurrently: the objects as stored, and the error to report, or None.

        Workloads start once the Secrets and ConfigMaps are in; the Services, budgets and
        the rest go beside those. A Service's cluster IP takes the API server longest to
        allocate, so holding the Services back too would add it to every new platform."""
        for manifest in manifests:
            metrics.APPLIED_OBJECTS.labels(manifest["kind"]).inc()
        mounted = [m for m in manifests if m["kind"] in MOUNTED]
        workloads = [m for m in manifests if m["kind"] in WORKLOADS]
        rest = [m for m in manifests if m["kind"] not in (*MOUNTED, *WORKLOADS)]

        async def mounted_then_workloads() -> list[dict[str, Any]]:
            return await self.kube.apply_all(mounted) + await self.kube.apply_all(workloads)

        try:
            first, second = await asyncio.gather(
                mounted_then_workloads(), self.kube.apply_all(rest)
            )
        except KubeError as e:
            # A refusal of a Secret could quote its data: for those, the code and reason only.
            if e.target.startswith("Secret/"):
                return [], f"applying {e.target} failed: {e.code} {e.reason}"
            return [], f"applying the platform's objects failed: {e}"
        return first + second, None

    async def grow_volumes(self, names: Names, design: PlatformDesign) -> str | None:
        claims = await self.kube.list_objects(
            "v1", "PersistentVolumeClaim", names.namespace, f"{PLATFORM_LABEL}={names.platform}"
        )
        patches = claim_growth(wanted_sizes(names, design), claims)
        if not patches:
            return None
        return (await self.apply(patches))[1]

    async def read_restore(self, platform: DataPlatform) -> RestoreReading | None:
        """What restore_step reads, while spec.restoreFrom is the platform's business."""
        if not wanted(platform):
            return None
        return await self.restorer.read(platform, self.names(platform))

    def restore_state(
        self,
        platform: DataPlatform,
        design: PlatformDesign,
        statefulsets: list[dict[str, Any]],
        reading: RestoreReading | None,
    ) -> RestoreState | None:
        if reading is None:
            return None
        return restore_step(
            platform, design, statefulsets, reading,
            config=self.render_config, backup_config=self.backup_config,
        )  # fmt: skip

    async def statefulsets(self, names: Names) -> list[dict[str, Any]]:
        return await self.kube.list_objects(
            "apps/v1", "StatefulSet", names.namespace, f"{PLATFORM_LABEL}={names.platform}"
        )

    @staticmethod
    def observe_statefulsets(
        names: Names, design: PlatformDesign, statefulsets: list[dict[str, Any]]
    ) -> Readiness:
        expected = expected_statefulsets(names, design)
        return readiness(expected, statefulsets, statefulset_components(names, design))

    async def report(
        self,
        platform: DataPlatform,
        planned: PlanOutcome,
        observed: Readiness | None,
        apply_error: str | None,
        *,
        keep_planned: bool = False,
        schema: SchemaState | None = None,
        restore: RestoreState | None = None,
    ) -> Outcome:
        old = platform.status
        status = next_status(platform, planned, observed, apply_error, self.names(platform),
                             now=datetime.now(UTC), keep_planned=keep_planned,
                             schema=schema, restore=restore)  # fmt: skip
        changed = status.wire() != old.wire()
        if changed:
            await self.kube.patch_status(
                API_VERSION,
                "DataPlatform",
                platform.metadata.name,
                platform.metadata.namespace or "default",
                status.wire(),
            )
        now = datetime.now(UTC)
        seconds = first_ready_seconds(platform, status.phase, now)
        if seconds is not None:
            ready = MemoryOutcome(observed_at=now, time_to_ready_seconds=seconds)
            await self.memory.record_outcomes(platform, [ready])
        replicas = observed.replicas if observed is not None else None
        recheck = (schema is not None and schema.recheck) or (
            restore is not None and restore.recheck
        )
        return Outcome(status, transition_events(old, status), apply_error, replicas, recheck)

    # -- deletion ------------------------------------------------------------------------

    async def finalize(self, name: str, namespace: str, policy: DeletionPolicy) -> list[str]:
        """Honour deletionPolicy. Owned children go with the platform through the garbage
        collector either way; volumes and Secrets are ours to delete only when asked."""
        if policy != DeletionPolicy.DELETE:
            return []
        names = Names(name, namespace, self.render_config.cluster_domain)
        selector = f"{PLATFORM_LABEL}={names.platform}"
        secrets_ = await self.kube.delete_all("v1", "Secret", names.namespace, selector)
        # Not the backups' claim: backups are for when the platform is gone.
        claims = await self.kube.delete_all(
            "v1", "PersistentVolumeClaim", names.namespace, f"{selector},{NOT_BACKUPS}"
        )
        return sorted([*secrets_, *claims])


def next_status(
    platform: DataPlatform,
    planned: PlanOutcome,
    observed: Readiness | None,
    apply_error: str | None,
    names: Names,
    *,
    now: datetime,
    keep_planned: bool = False,
    schema: SchemaState | None = None,
    restore: RestoreState | None = None,
) -> DataPlatformStatus:
    """The status this reconcile saw: a pure function, so each transition is unit-tested.
    `schema` is the SchemaInSync check's finding, None when it had nothing new to say;
    `restore` the Restored condition's, None when there is no restore to look at (none asked
    for, or done: Restored True is kept as it is)."""
    old = platform.status
    generation = platform.metadata.generation
    conditions = list(old.conditions)
    if not keep_planned:
        conditions = set_condition(
            conditions, ConditionType.PLANNED, planned.accepted, planned.reason, planned.message,
            generation=generation, now=now,
        )  # fmt: skip
    if planned.design is None:
        conditions = set_condition(
            conditions, ConditionType.PROVISIONED, False, Reason.NOT_PLANNED,
            "nothing to provision until a design is planned", generation=generation, now=now,
        )  # fmt: skip
    elif apply_error is not None:
        conditions = set_condition(
            conditions, ConditionType.PROVISIONED, False, Reason.APPLY_FAILED, apply_error,
            generation=generation, now=now,
        )  # fmt: skip
    elif not keep_planned:
        conditions = set_condition(
            conditions, ConditionType.PROVISIONED, True, Reason.APPLIED,
            "every object of the design is applied", generation=generation, now=now,
        )  # fmt: skip
    if schema is not None:
        conditions = set_condition(
            conditions, ConditionType.SCHEMA_IN_SYNC, schema.in_sync, schema.reason,
            schema.message, generation=generation, now=now,
        )  # fmt: skip
    if restore is not None:
        conditions = set_condition(
            conditions, ConditionType.RESTORED, restore.restored, restore.reason,
            restore.message, generation=generation, now=now,
        )  # fmt: skip
    if observed is not None:
        # Ready summarises: the design fully applied, every replica it wants Ready, no host
        # known to lack the cluster's tables, and the backup asked for restored.
        applied = is_true(conditions, ConditionType.PROVISIONED)
        lacking = is_false(conditions, ConditionType.SCHEMA_IN_SYNC)
        restoring = is_false(conditions, ConditionType.RESTORED)
        ready = observed.ready and applied and not lacking and not restoring
        if not applied:
            reason, message = Reason.APPLY_FAILED, "the design is not fully applied (Provisioned)"
        elif restoring:
            reason = Reason.NOT_RESTORED
            message = "waiting for the backup to be restored (Restored)"
        elif observed.ready and lacking:
            reason = Reason.SCHEMA_NOT_IN_STEP
            message = "a ClickHouse host lacks the cluster's tables (SchemaInSync)"
        elif ready:
            reason, message = Reason.ALL_REPLICAS_READY, observed.message
        else:
            reason = Reason.ROLLING_OUT if observed.rolling else Reason.REPLICAS_NOT_READY
            message = observed.message
        conditions = set_condition(
            conditions, ConditionType.READY, ready, reason, message,
            generation=generation, now=now,
        )  # fmt: skip
    design = planned.design
    was_ready = old.phase in (Phase.READY, Phase.DEGRADED, Phase.HEALING)
    return DataPlatformStatus(
        phase=phase_of(conditions, was_ready=was_ready, has_design=design is not None),
        observed_generation=old.observed_generation if keep_planned else generation,
        conditions=conditions,
        design=design,
        plan_hash=planned.plan_hash,
        endpoints=endpoints(names, design) if design else None,
        # Tokens and cost belong to the planning that made the design: kept until the next.
        planner=planned.planner
        if planned.changed
        else old.planner
        or (
            PlannerStatus(provider=design.planner.provider, model=design.planner.model)
            if design
            else None
        ),
        adjustments=old.adjustments,
        postgres_primary=old.postgres_primary,
    )


def rolled_outcome(outcome: Outcome, rolled: rollout.Rollout) -> Outcome:
    """`outcome` with an Event per host the rollout restarted, and its wish to look again."""
    outcome.events += [Event(*event) for event in rolled.events()]
    outcome.recheck |= rolled.recheck
    return outcome


async def _no_error() -> str | None:
    return None


def restored_render(
    rendered: list[dict[str, Any]],
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    restore: RestoreState | None,
) -> list[dict[str, Any]]:
    """The platform's objects as the restore wants them: PostgreSQL restoring instance 0 first
    while that is due, and no StatefulSet at all while the backup cannot be read (databases
    started empty could not be restored into)."""
    if restore is None:
        return rendered
    if restore.withhold:
        return [m for m in rendered if m["kind"] != "StatefulSet"]
    return postgres.with_restore(rendered, platform, design, config, restore.postgres)


def endpoints(names: Names, design: PlatformDesign) -> Endpoints:
    ch = names.service_host(names.clickhouse)
    with_postgres = design.postgres.enabled and design.postgres.instances > 0
    return Endpoints(
        clickhouse_http=f"http://{ch}:{clickhouse.HTTP_PORT}",
        clickhouse_native=f"{ch}:{clickhouse.NATIVE_PORT}",
        postgres_read_write=f"{names.service_host(names.postgres_rw)}:{postgres.PORT}"
        if with_postgres
        else None,
        postgres_read_only=f"{names.service_host(names.postgres_ro)}:{postgres.PORT}"
        if with_postgres
        else None,
    )


def transition_events(old: DataPlatformStatus, new: DataPlatformStatus) -> list[Event]:
    """One Event per condition that changed status or reason: the platform's story in
    `kubectl describe`, without a line per resync."""
    before = {c.type: (c.status, c.reason) for c in old.conditions}
    events = []
    for condition in new.conditions:
        if before.get(condition.type) == (condition.status, condition.reason):
            continue
        good = condition.status == "True"
        # Replicas coming up while a platform is provisioned is news, not a fault; so is a
        # rollout (a new version, design or configuration), whatever the phase.
        coming_up = condition.reason == Reason.REPLICAS_NOT_READY and old.phase != Phase.READY
        quiet = coming_up or condition.reason in (
            Reason.ROLLING_OUT,
            Reason.RESTORING,
            Reason.NOT_RESTORED,
        )
        kind = "Normal" if good or quiet else "Warning"
        events.append(Event(kind, condition.reason, condition.message))
    return events
