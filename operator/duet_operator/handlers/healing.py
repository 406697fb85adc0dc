"""kopf handlers of the healer: when a platform is looked at, and by whom.

Three triggers run the same pass (healing.Healer.heal), under the platform's lock shared with
its reconcile: a pod of the platform changed (coalesced: a burst of pod events is one pass,
run beside kopf's worker as handlers/background.py says why),
a timer per platform (symptoms that take time, verification of applied remedies, stale
proposals), and a Remediation approved by a person. The pass reads everything afresh, so it
does not matter which trigger ran it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from duet_operator import metrics
from duet_operator.handlers import background
from duet_operator.handlers.dataplatform import lock
from duet_operator.handlers.events import post_events
from duet_operator.healing import Healer, HealSettings, unwell
from duet_operator.models import GROUP, VERSION, DataPlatform
from duet_operator.models.dataplatform import Phase
from duet_operator.models.remediation import RemediationPhase
from duet_operator.render.naming import PLATFORM_LABEL

log = logging.getLogger("duet.healer")
PLATFORMS = "dataplatforms"
REMEDIATIONS = "remediations"
PLATFORM = "DataPlatform"


async def _heal(memo: Any, namespace: str, name: str, *, timer: bool = False) -> None:
    healer: Healer = memo.healer
    async with lock(memo, namespace, name):
        healer.waiting.discard(f"{namespace}/{name}")
        # Read inside the lock: the reconcile may have just written the platform.
        body = await healer.kube.get(f"{GROUP}/{VERSION}", PLATFORM, name, namespace)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            healer.forget(namespace, name)
            return
        try:
            platform = DataPlatform.model_validate(body)
        except ValidationError:
            return  # the platform's own handlers report it
        if platform.status.design is None:
            return  # nothing provisioned, nothing to heal
        if _provisioning(
            platform.status.phase, platform.metadata.creation_timestamp, healer.settings
        ):
            return
        if timer and _quiet(platform.status.phase, f"{namespace}/{name}", healer):
            return
        with metrics.reconcile_timer("Healing"):
            events = await healer.heal(platform)
    post_events(body, events, log)


def _quiet(phase: str | None, key: str, healer: Healer) -> bool:
    """Ready, with every replica ready, and nothing seen or open at a recent pass."""
    return phase == Phase.READY and healer.is_quiet(key)


COMING_UP = (None, Phase.PLANNING, Phase.PROVISIONING)


def _provisioning(phase: str | None, created: datetime | None, settings: HealSettings) -> bool:
    """Still coming up for the first time, and within the grace: the reconcile's business."""
    return phase in COMING_UP and created is not None and _in_grace(created, settings)


def _in_grace(created: datetime, settings: HealSettings) -> bool:
    return (datetime.now(UTC) - created).total_seconds() < settings.provisioning_grace_seconds


def _new(
    key: str, coming_up: Mapping[str, Collection[datetime]] | None, settings: HealSettings
) -> bool:
    """Provisioning within the grace, as kopf's index of the platforms says."""
    created = coming_up.get(key, ()) if coming_up is not None else ()
    return any(_in_grace(c, settings) for c in created)


def coming_up_entry(
    name: str, namespace: str | None, meta: Mapping[str, Any], status: Mapping[str, Any], **_: Any
) -> dict[str, datetime]:
    """A platform's entry in kopf's index `coming_up` (the platforms not yet provisioned, with
    their creation time, kept from the platforms' own watch): a pod event of one of them is
    passed over without reading it."""
    created = meta.get("creationTimestamp")
    if status.get("phase") not in COMING_UP or not created or meta.get("deletionTimestamp"):
        # Empty, not None: kopf keeps an object's earlier entries when its handler returns
        # None, and a platform once Provisioning would stay in the index after it is Ready.
        return {}
    return {f"{namespace}/{name}": datetime.fromisoformat(created)}


async def heal_platform(
    *,
    name: str,
    namespace: str | None,
    status: Mapping[str, Any],
    memo: Any,
    coming_up: Mapping[str, Collection[datetime]] | None = None,  # kopf passes its indexes by name
    **_: Any,
) -> None:
    """The timer. A platform that was quiet at the last pass and is still Ready in kopf's
    live copy of it, or still being provisioned, is passed over without reading it: most of
    a healthy fleet, every interval. The pass itself looks again at the platform as read."""
    if not namespace:
        return
    healer: Healer = memo.healer
    key = f"{namespace}/{name}"
    if _quiet(status.get("phase"), key, healer) or _new(key, coming_up, healer.settings):
        return
    await _heal(memo, namespace, name, timer=True)


async def heal_platform_of(
    *,
    type: str | None,
    labels: Mapping[str, str],
    status: Mapping[str, Any],
    namespace: str | None,
    memo: Any,
    coming_up: Mapping[str, Collection[datetime]] | None = None,  # kopf passes its indexes by name
    **_: Any,
) -> None:
    """A pod of a platform changed: it went wrong, or a remedy of its platform awaits
    verification. A crash-looping pod changes every few seconds, and a rollout changes many:
    one pass waiting for the lock covers every event before it starts."""
    name = labels.get(PLATFORM_LABEL)
    # type None is kopf's initial listing of every pod when it starts: the timers look at
    # every platform soon after, and a pass per listed pod would hold up the platforms'
    # first reconciles (and their Events) behind the platform locks.
    if type is None or not name or not namespace:
        return
    healer: Healer = memo.healer
    key = f"{namespace}/{name}"
    # A healthy pod's change matters only to a remedy waiting to be verified: its pod back
    # up is the verification, which would otherwise wait for the timer.
    if type != "DELETED" and not unwell(status) and key not in healer.verifying:
        return
    if key in healer.waiting:
        return
    # Every pod of a new platform is unwell until it is up: a pass for each of their events
    # would read the platform only to find it still provisioning (with the timer's passes,
    # half the operator's 3000 reads when 200 platforms are created at once). The pass
    # would decide from the same phase and age.
    if _new(key, coming_up, healer.settings):
        return
    healer.waiting.add(key)
    background.start(memo, _heal(memo, namespace, name), name=f"heal pass of {key}")


def _approved_and_waiting(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    phase = status.get("phase") or RemediationPhase.PENDING
    return bool(spec.get("approved")) and phase in (
        RemediationPhase.PENDING,
        RemediationPhase.APPROVED,
    )


async def run_approved(spec: kopf.Spec, namespace: str | None, memo: Any, **_: Any) -> None:
    """A person approved a Remediation (`duet approve`, or a patch of spec.approved)."""
    platform = (spec.get("platformRef") or {}).get("name")
    if platform and namespace:
        await _heal(memo, namespace, platform)


def register(registry: kopf.OperatorRegistry, settings: HealSettings) -> None:
    # The id is the name of the keyword argument kopf passes the index to handlers by.
    kopf.index(GROUP, VERSION, PLATFORMS, registry=registry, id="coming_up")(coming_up_entry)
    kopf.timer(
        GROUP,
        VERSION,
        PLATFORMS,
        registry=registry,
        id="heal",
        interval=settings.interval_seconds,
        initial_delay=settings.interval_seconds,
        when=lambda meta, **_: not meta.get("deletionTimestamp"),
    )(heal_platform)
    kopf.on.event("", "v1", "pods", registry=registry, labels={PLATFORM_LABEL: kopf.PRESENT})(
        heal_platform_of
    )
    # An event handler, not a change handler: level-based, so an approval made while the
    # operator was down is acted on when it starts, and kopf writes nothing on Remediations.
    kopf.on.event(GROUP, VERSION, REMEDIATIONS, registry=registry, when=_approved_and_waiting)(
        run_approved
    )
