"""kopf handlers of QueryAgent: parse, reconcile under the agent's lock, post the events.

No deletion handler (so no finalizer): the Deployment and Service are owned by the agent and
the garbage collector removes them with it; an agent holds no data.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from duet_operator import metrics
from duet_operator.handlers.dataplatform import lock
from duet_operator.manifests import field_errors
from duet_operator.models import GROUP, VERSION, QueryAgent
from duet_operator.query_agents import KIND, AgentOutcome, QueryAgentReconciler
from duet_operator.render.queryagent import AGENT_LABEL

log = logging.getLogger("duet.queryagents")
PLURAL = "queryagents"
# A missing platform or Secret is usually on its way (applied in the same kubectl apply):
# look again soon, rather than at the next resync.
SOURCE_RETRY_SECONDS = 10


def _publish(body: Any, agent: QueryAgent, outcome: AgentOutcome) -> None:
    ref = f"{agent.metadata.namespace}/{agent.metadata.name}"
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        level = logging.WARNING if event.type == "Warning" else logging.INFO
        log.log(level, "%s %s: %s", ref, event.reason, event.message)


async def _read(
    reconciler: QueryAgentReconciler, name: str, namespace: str
) -> tuple[Any, QueryAgent] | None:
    body = await reconciler.kube.get(f"{GROUP}/{VERSION}", KIND, name, namespace)
    if body is None or body.get("metadata", {}).get("deletionTimestamp"):
        return None
    try:
        return body, QueryAgent.model_validate(body)
    except ValidationError as e:
        # Only with a CRD older than the operator; a spec change is what fixes it.
        raise kopf.PermanentError(f"cannot read this QueryAgent: {field_errors(e)}") from e


async def reconcile_agent(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """create, update, resume and the resync timer."""
    reconciler: QueryAgentReconciler = memo.query_agents
    async with lock(memo, namespace, f"qa/{name}"):
        read = await _read(reconciler, name, namespace or "default")
        if read is None:
            return
        body, agent = read
        with metrics.reconcile_timer(KIND):
            outcome = await reconciler.reconcile(agent)
    _publish(body, agent, outcome)
    if outcome.retry:
        message = outcome.status.conditions[0].message if outcome.status.conditions else ""
        raise kopf.TemporaryError(message, delay=SOURCE_RETRY_SECONDS)


async def refresh_agent_of(
    type: str, labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any
) -> None:
    """A child changed: a deleted one is put back at once, a Deployment's progress reported."""
    name = labels.get(AGENT_LABEL)
    if not name or not namespace:
        return
    reconciler: QueryAgentReconciler = memo.query_agents
    async with lock(memo, namespace, f"qa/{name}"):
        read = await _read(reconciler, name, namespace)
        if read is None:
            return
        body, agent = read
        with metrics.reconcile_timer(f"{KIND}Status"):
            if type == "DELETED":
                outcome = await reconciler.reconcile(agent)
            else:
                outcome = await reconciler.refresh(agent)
    _publish(body, agent, outcome)


def register(registry: kopf.OperatorRegistry, resync_seconds: float) -> None:
    resource = (GROUP, VERSION, PLURAL)
    for decorator in (kopf.on.resume, kopf.on.create, kopf.on.update):
        decorator(*resource, registry=registry)(reconcile_agent)
    kopf.timer(
        *resource,
        registry=registry,
        id="resync",
        interval=resync_seconds,
        initial_delay=resync_seconds,
        when=lambda meta, **_: not meta.get("deletionTimestamp"),
    )(reconcile_agent)
    children = {AGENT_LABEL: kopf.PRESENT}
    for group, version, plural in (
        ("apps", "v1", "deployments"),
        ("", "v1", "services"),
        ("policy", "v1", "poddisruptionbudgets"),
    ):
        kopf.on.event(group, version, plural, registry=registry, labels=children)(refresh_agent_of)
