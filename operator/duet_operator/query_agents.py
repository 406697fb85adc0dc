"""One reconcile of a QueryAgent: check its sources -> render -> apply -> report.

A QueryAgent holds no data, so there is nothing to plan and nothing to keep on deletion: its
Deployment and Service are owned by it and go with it. What can go wrong is a source that is
not there yet (the platform, or a Secret the spec names); that is a condition and a retry,
not a Deployment whose pods cannot start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from duet_operator.kube.client import Kube, KubeError
from duet_operator.models import API_VERSION, DataPlatform
from duet_operator.models.common import SecretKeyRef
from duet_operator.models.queryagent import (
    Backend,
    QueryAgent,
    QueryAgentPhase,
    QueryAgentStatus,
)
from duet_operator.reconcile import Event
from duet_operator.render import clickhouse, postgres
from duet_operator.render.naming import Names
from duet_operator.render.queryagent import build_query_agent, deployment_name, endpoint
from duet_operator.settings import OperatorSettings
from duet_operator.status import ConditionType, Reason, find, set_condition

KIND = "QueryAgent"


@dataclass(frozen=True)
class Problem:
    """Why the agent cannot run (yet): the Ready condition's reason and message."""

    reason: Reason
    message: str


@dataclass
class AgentOutcome:
    status: QueryAgentStatus
    events: list[Event] = field(default_factory=list)
    retry: bool = False


def next_agent_status(
    agent: QueryAgent,
    problem: Problem | None,
    deployment: dict[str, Any] | None,
    *,
    cluster_domain: str,
    now: datetime,
) -> QueryAgentStatus:
    """Ready when every wanted replica of the current template is ready; otherwise why not."""
    old = agent.status
    generation = agent.metadata.generation
    wanted = agent.spec.replicas
    state = (deployment or {}).get("status") or {}
    ready = int(state.get("readyReplicas") or 0)
    updated = int(state.get("updatedReplicas") or 0)
    current = (deployment or {}).get("metadata", {}).get("generation") == state.get(
        "observedGeneration"
    )
    if problem is not None:
        ok, reason, message = False, problem.reason, problem.message
    elif deployment is not None and current and ready >= wanted and updated >= wanted:
        ok, reason = True, Reason.ALL_REPLICAS_READY
        message = f"{ready}/{wanted} query server replicas ready"
    else:
        ok, reason = False, Reason.REPLICAS_NOT_READY
        message = f"{ready}/{wanted} query server replicas ready"
    conditions = set_condition(
        old.conditions, ConditionType.READY, ok, reason, message, generation=generation, now=now
    )
    was_ready = old.phase in (QueryAgentPhase.READY, QueryAgentPhase.DEGRADED)
    if ok:
        phase = QueryAgentPhase.READY
    elif problem is not None and not was_ready:
        phase = (
            QueryAgentPhase.FAILED
            if problem.reason == Reason.INVALID_SPEC
            else QueryAgentPhase.PENDING
        )
    else:
        phase = QueryAgentPhase.DEGRADED if was_ready else QueryAgentPhase.PENDING
    return QueryAgentStatus(
        phase=phase,
        observed_generation=generation,
        conditions=conditions,
        endpoint=endpoint(agent, cluster_domain) if deployment is not None else old.endpoint,
        ready_replicas=ready,
    )


def agent_events(old: QueryAgentStatus, new: QueryAgentStatus) -> list[Event]:
    before, after = (
        find(old.conditions, ConditionType.READY),
        find(new.conditions, ConditionType.READY),
    )
    if after is None or (before and (before.status, before.reason) == (after.status, after.reason)):
        return []
    coming_up = after.reason == Reason.REPLICAS_NOT_READY and old.phase != QueryAgentPhase.READY
    kind = "Normal" if after.status == "True" or coming_up else "Warning"
    return [Event(kind, after.reason, after.message)]


class QueryAgentReconciler:
    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        self.render_config = settings.render_config()

    async def reconcile(self, agent: QueryAgent) -> AgentOutcome:
        problem = await self.sources_missing(agent)
        deployment = None
        if problem is None:
            try:
                applied = await self.kube.apply_all(build_query_agent(agent, self.render_config))
            except KubeError as e:
                problem = Problem(Reason.APPLY_FAILED, f"applying the query server failed: {e}")
            else:
                deployment = next(m for m in applied if m["kind"] == "Deployment")
        return await self.report(agent, problem, deployment)

    async def refresh(self, agent: QueryAgent) -> AgentOutcome:
        """Status only: the Deployment changed."""
        namespace = agent.metadata.namespace or "default"
        deployment = await self.kube.get("apps/v1", "Deployment", deployment_name(agent), namespace)
        if deployment is None:
            return await self.reconcile(agent)
        return await self.report(agent, None, deployment)

    async def sources_missing(self, agent: QueryAgent) -> Problem | None:
        """The platform and every Secret the Deployment will reference, checked before it is
        made: a missing one is named in status, instead of pods stuck in config errors."""
        spec = agent.spec
        namespace = agent.metadata.namespace or "default"
        secrets: list[SecretKeyRef] = []
        if spec.platform_ref is not None:
            ref = spec.platform_ref
            body = await self.kube.get(API_VERSION, "DataPlatform", ref.name, namespace)
            if body is None:
                return Problem(
                    Reason.PLATFORM_NOT_FOUND, f"DataPlatform {ref.name} not found in {namespace}"
                )
            platform = DataPlatform.model_validate(body)
            design = platform.status.design
            names = Names(ref.name, namespace, self.render_config.cluster_domain)
            if ref.backend == Backend.POSTGRES:
                if design is not None and not (
                    design.postgres.enabled and design.postgres.instances
                ):
                    return Problem(
                        Reason.PLATFORM_NOT_FOUND, f"DataPlatform {ref.name} runs no PostgreSQL"
                    )
                key = postgres.READONLY_PASSWORD_KEY
                secrets.append(SecretKeyRef(name=names.postgres_credentials, key=key))
            else:
                key = clickhouse.READONLY_PASSWORD_KEY
                secrets.append(SecretKeyRef(name=names.clickhouse_credentials, key=key))
        if spec.connection_secret_ref is not None:
            secrets.append(spec.connection_secret_ref)
        if spec.secret_ref is not None:
            secrets.append(spec.secret_ref)
        if spec.memory is not None:
            secrets.append(spec.memory.url_secret_ref)
        for ref_ in secrets:
            data = await self.kube.secret_data(ref_.name, namespace)
            if data is None or ref_.key not in data:
                # Names only: never a value.
                return Problem(
                    Reason.SECRET_NOT_FOUND, f"Secret {ref_.name} with key {ref_.key} not found"
                )
        return None

    async def report(
        self, agent: QueryAgent, problem: Problem | None, deployment: dict[str, Any] | None
    ) -> AgentOutcome:
        old = agent.status
        status = next_agent_status(
            agent,
            problem,
            deployment,
            cluster_domain=self.render_config.cluster_domain,
            now=datetime.now(UTC),
        )
        if status.wire() != old.wire():
            await self.kube.patch_status(
                API_VERSION,
                KIND,
                agent.metadata.name,
                agent.metadata.namespace or "default",
                status.wire(),
            )
        return AgentOutcome(status, agent_events(old, status), retry=problem is not None)
