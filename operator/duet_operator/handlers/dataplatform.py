"""kopf handlers of DataPlatform: thin adapters from kopf's events to the Reconciler.

Parse the body into the model, run the reconcile under the platform's lock, post the events
it returns, and turn a failed apply into a retry. Everything else lives in reconcile.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, NoReturn

import kopf
from pydantic import ValidationError

from duet_operator import metrics
from duet_operator.handlers import background
from duet_operator.handlers.events import post_events
from duet_operator.manifests import field_errors
from duet_operator.models import GROUP, VERSION, DataPlatform
from duet_operator.models.dataplatform import DeletionPolicy, Phase
from duet_operator.reconcile import Outcome, Reconciler
from duet_operator.render import clickhouse
from duet_operator.render.naming import PLATFORM_LABEL
from duet_operator.status import ConditionType, Reason, invalid_spec_status

log = logging.getLogger("duet.platforms")
PLURAL = "dataplatforms"
KIND = "DataPlatform"
RESYNC = "DataPlatformResync"  # the drift timer's reconciles, in the metrics
RECHECK_SECONDS = 10.0


def lock(memo: Any, namespace: str | None, name: str) -> asyncio.Lock:
    # The drift timer, the change handlers and the StatefulSet watch of one platform run as
    # separate tasks in kopf; one at a time per platform keeps status reads and writes ordered
    # (and each transition's Event posted once).
    locks: dict[str, asyncio.Lock] = memo.locks
    return locks.setdefault(f"{namespace}/{name}", asyncio.Lock())


@contextlib.asynccontextmanager
async def _worker(memo: Any) -> AsyncIterator[None]:
    """A slot among the operator's concurrent reconciles (controller-runtime's
    MaxConcurrentReconciles). Past the API server's throughput, more reconciles at once only
    make each wait longer at the server; queued here, they wait visibly, in
    duet_reconcile_queue_seconds, and the platform lock is held while queueing."""
    workers: asyncio.Semaphore = memo.workers
    queued = time.perf_counter()
    async with workers:
        metrics.RECONCILE_QUEUE.observe(time.perf_counter() - queued)
        yield


def _publish(body: Any, platform: DataPlatform, outcome: Outcome) -> None:
    post_events(body, outcome.events, log)
    namespace = platform.metadata.namespace or ""
    phase = outcome.status.phase
    metrics.set_phase(namespace, platform.metadata.name, phase)
    if outcome.replicas is not None:
        metrics.set_replicas(namespace, platform.metadata.name, outcome.replicas)
    if phase == Phase.READY and platform.status.phase != Phase.READY:
        created = platform.metadata.creation_timestamp
        first_ready = platform.status.phase in (None, Phase.PLANNING, Phase.PROVISIONING)
        if created and first_ready:
            metrics.TIME_TO_READY.observe((datetime.now(UTC) - created).total_seconds())


async def reconcile_platform(
    name: str, namespace: str | None, memo: Any, *, timed_as: str = KIND, **_: Any
) -> None:
    """create, update, resume, a deleted child and the drift timer: plan, apply, observe,
    report."""
    reconciler: Reconciler = memo.reconciler
    async with lock(memo, namespace, name):
        # kopf's body is the event's snapshot, and a handler that waited for the lock holds
        # an old one (a timer could re-apply the design an update just replaced): read anew.
        body = await reconciler.kube.get(f"{GROUP}/{VERSION}", KIND, name, namespace)
        if body is None:
            return
        try:
            platform = DataPlatform.model_validate(body)
        except ValidationError as e:
            await _refuse_invalid(reconciler, body, e)
        if platform.metadata.deletion_timestamp:
            return
        async with _worker(memo):
            with metrics.reconcile_timer(timed_as):
                outcome = await reconciler.reconcile(platform)
    _publish(body, platform, outcome)
    _recheck_later(memo, namespace, name, outcome)
    if outcome.apply_error:
        raise kopf.TemporaryError(
            outcome.apply_error, delay=reconciler.settings.apply_retry_seconds
        )


async def resync_platform(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """The drift timer: the same reconcile, timed apart. A resync of an unchanged platform is
    a LIST per kind of child and nothing applied; in one histogram with the reconciles that
    changes ask for, a fleet's resyncs would hide how long those take."""
    await reconcile_platform(name=name, namespace=namespace, memo=memo, timed_as=RESYNC)


async def _refuse_invalid(reconciler: Reconciler, body: Any, error: ValidationError) -> NoReturn:
    """Say once, in status and an Event, which fields the operator cannot read, and stop
    retrying: only a change of the object (or of the CRD) can fix it."""
    fields = field_errors(error).replace("\n", "; ")
    message = (
        f"The operator cannot read this DataPlatform ({fields}); "
        "is its CRD older than the operator? Apply crds/ and fix the fields."
    )
    meta = body["metadata"]
    planned: dict[str, Any] = next(
        (
            c
            for c in (body.get("status") or {}).get("conditions") or []
            if c.get("type") == ConditionType.PLANNED
        ),
        {},
    )
    if (planned.get("reason"), planned.get("message")) != (Reason.INVALID_SPEC, message):
        status = invalid_spec_status(body, message, now=datetime.now(UTC))
        await reconciler.kube.patch_status(
            f"{GROUP}/{VERSION}", KIND, meta["name"], meta["namespace"], status
        )
        kopf.event(body, type="Warning", reason=Reason.INVALID_SPEC, message=message)
        log.warning("%s/%s %s: %s", meta["namespace"], meta["name"], Reason.INVALID_SPEC, message)
    raise kopf.PermanentError(message)


async def refresh_platform_of(
    labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any
) -> None:
    """A StatefulSet of a platform changed: its readiness is reported again, by a pass that
    runs beside kopf's worker (handlers/background.py)."""
    name = labels.get(PLATFORM_LABEL)
    if not name or not namespace:
        return
    # A rollout sends a burst of StatefulSet events. One refresh waiting for the lock covers
    # all that arrive before it starts, since it reads everything once it holds the lock.
    waiting: set[str] = memo.refresh_waiting
    key = f"{namespace}/{name}"
    if key in waiting:
        return
    waiting.add(key)
    background.start(memo, _refresh(memo, namespace, name), name=f"refresh of {key}")


async def _refresh(memo: Any, namespace: str, name: str) -> None:
    reconciler: Reconciler = memo.reconciler
    async with lock(memo, namespace, name):
        memo.refresh_waiting.discard(f"{namespace}/{name}")
        # Read inside the lock: the status this refresh starts from is the latest written.
        body = await reconciler.kube.get(f"{GROUP}/{VERSION}", KIND, name, namespace)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return
        try:
            platform = DataPlatform.model_validate(body)
        except ValidationError:
            return  # the change handlers report it, once
        async with _worker(memo):
            with metrics.reconcile_timer("DataPlatformStatus"):
                outcome = await reconciler.refresh(platform)
    _publish(body, platform, outcome)
    _recheck_later(memo, namespace, name, outcome)


def _recheck_later(memo: Any, namespace: str | None, name: str, outcome: Outcome) -> None:
    """A refresh in a few seconds, for a finding that settles without any child changing (a
    schema replay whose Replicated databases fill in): no event would bring it otherwise."""
    if not outcome.recheck or not namespace:
        return
    pending: dict[str, asyncio.Task[None]] = memo.setdefault("rechecks", {})
    key = f"{namespace}/{name}"
    if key in pending:
        return

    async def later() -> None:
        await asyncio.sleep(RECHECK_SECONDS)
        pending.pop(key, None)
        await refresh_platform_of(labels={PLATFORM_LABEL: name}, namespace=namespace, memo=memo)

    pending[key] = asyncio.create_task(later())


async def repair_deleted_child(
    type: str, labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any
) -> None:
    """A child of a platform was deleted (by hand, or by a tool): put it back now rather
    than at the next resync."""
    name = labels.get(PLATFORM_LABEL)
    if type == "DELETED" and name and namespace:
        await reconcile_platform(name=name, namespace=namespace, memo=memo)


async def clickhouse_host_changed(
    type: str | None, labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any
) -> None:
    """A ClickHouse pod came or went (a new replica, a replaced one): its platform's hosts
    are looked at again for their schema once all are Ready. The StatefulSet's own status can
    be the same before and after a quick replacement, so it cannot say this."""
    name = labels.get(PLATFORM_LABEL)
    host = labels.get("app.kubernetes.io/name") == clickhouse.APP
    if host and type in ("ADDED", "DELETED") and name and namespace:
        reconciler: Reconciler = memo.reconciler
        reconciler.schema.forget(f"{namespace}/{name}")


async def finalize_platform(body: kopf.Body, memo: Any, **_: Any) -> None:
    """Deletion: keep or remove volumes and Secrets as spec.deletionPolicy says."""
    # Read from the raw body: an object the model cannot read must still be deletable, and
    # anything but an explicit Delete keeps the data.
    name, namespace = body.meta["name"], body.meta["namespace"]
    policy = DeletionPolicy.DELETE if body.spec.get("deletionPolicy") == "Delete" else None
    reconciler: Reconciler = memo.reconciler
    deleted = await reconciler.finalize(name, namespace, policy or DeletionPolicy.RETAIN)
    reconciler.forget(namespace, name)
    metrics.forget_platform(namespace, name)
    ref = f"{namespace}/{name}"
    if deleted:
        log.info("%s deleted; deletionPolicy Delete removed %s", ref, ", ".join(deleted))
    else:
        log.info("%s deleted; deletionPolicy Retain kept its volumes and Secrets", ref)


def register(registry: kopf.OperatorRegistry, resync_seconds: float) -> None:
    resource = (GROUP, VERSION, PLURAL)
    for decorator in (kopf.on.resume, kopf.on.create, kopf.on.update):
        decorator(*resource, registry=registry)(reconcile_platform)
    kopf.timer(
        *resource,
        registry=registry,
        id="drift",
        interval=resync_seconds,
        initial_delay=resync_seconds,
        # A platform being deleted is the finalizer's.
        when=lambda meta, **_: not meta.get("deletionTimestamp"),
    )(resync_platform)
    kopf.on.delete(*resource, registry=registry)(finalize_platform)
    children = {PLATFORM_LABEL: kopf.PRESENT}
    kopf.on.event("apps", "v1", "statefulsets", registry=registry, labels=children)(
        refresh_platform_of
    )
    kopf.on.event("", "v1", "pods", registry=registry, labels=children)(clickhouse_host_changed)
    for group, version, plural in (
        ("", "v1", "services"),
        ("", "v1", "configmaps"),
        ("", "v1", "secrets"),
        ("policy", "v1", "poddisruptionbudgets"),
    ):
        kopf.on.event(group, version, plural, registry=registry, labels=children)(
            repair_deleted_child
        )
