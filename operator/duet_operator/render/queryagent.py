"""A QueryAgent's Deployment and Service: `duet query serve`, read-only, on port 8080.

The server's settings come from `duet_agents.query.settings` field names, so what is rendered
here is what the server reads. Passwords, API keys and the memory's URL are referenced from
their Secrets, never copied into the Deployment.
"""

from __future__ import annotations

import json
from typing import Any

from duet_agents.planner.models import Resources
from duet_agents.query.settings import DEFAULT_PORT, env_name
from duet_operator.models import GROUP
from duet_operator.models.queryagent import Backend, QueryAgent
from duet_operator.render import clickhouse, postgres
from duet_operator.render import objects as o
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import MANAGED_BY, MANAGER, Names

AGENT_LABEL = f"{GROUP}/query-agent"
APP = "duet-query"
PORT_NAME = "http"
RUN_AS = 10001  # the image's non-root user (Dockerfile)
DEFAULT_RESOURCES = Resources(cpu="500m", memory="512Mi")


def deployment_name(agent: QueryAgent) -> str:
    return f"{agent.metadata.name}-query"


def endpoint(agent: QueryAgent, cluster_domain: str) -> str:
    host = f"{deployment_name(agent)}.{agent.metadata.namespace}.svc.{cluster_domain}"
    return f"http://{host}:{DEFAULT_PORT}"


def labels(agent: QueryAgent) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/instance": agent.metadata.name,
        "app.kubernetes.io/component": "query",
        "app.kubernetes.io/part-of": "duet",
        MANAGED_BY: MANAGER,
        AGENT_LABEL: agent.metadata.name,
    }


def selector(agent: QueryAgent) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": agent.metadata.name}


def database_env(agent: QueryAgent, cluster_domain: str) -> list[dict[str, Any]]:
    """Where the agent connects, as whom. A platform's read-only user is named in the URL
    and its password referenced from the platform's Secret; a connection Secret is the
    user's URL as it stands."""
    spec = agent.spec
    if spec.connection_secret_ref is not None:
        ref = spec.connection_secret_ref
        return [o.secret_env(env_name("database_url"), ref.name, ref.key)]
    assert spec.platform_ref is not None  # the CRD requires exactly one source
    names = Names(spec.platform_ref.name, agent.metadata.namespace or "default", cluster_domain)
    if spec.platform_ref.backend == Backend.POSTGRES:
        host = names.service_host(names.postgres_ro)
        url = f"postgresql://{postgres.READONLY_USER}@{host}:{postgres.PORT}/postgres"
        secret, key = names.postgres_credentials, postgres.READONLY_PASSWORD_KEY
    else:
        host = names.service_host(names.clickhouse)
        url = f"clickhouse://{clickhouse.READONLY_USER}@{host}:{clickhouse.HTTP_PORT}/default"
        secret, key = names.clickhouse_credentials, clickhouse.READONLY_PASSWORD_KEY
    return [
        {"name": env_name("database_url"), "value": url},
        o.secret_env(env_name("database_password"), secret, key),
    ]


def server_env(agent: QueryAgent, cluster_domain: str) -> list[dict[str, Any]]:
    spec = agent.spec
    plain: dict[str, str] = {
        "engine": str(spec.engine),
        "databases": json.dumps(spec.databases),
        "max_rows": str(spec.limits.max_rows),
        "timeout_seconds": str(spec.limits.timeout_seconds),
        "requests_per_minute": str(spec.limits.requests_per_minute),
        "tables_allow": json.dumps(spec.tables.allow),
        "tables_deny": json.dumps(spec.tables.deny),
        "port": str(DEFAULT_PORT),
    }
    if spec.model:
        plain["model"] = spec.model
    if spec.base_url:
        plain["base_url"] = spec.base_url
    env = database_env(agent, cluster_domain)
    env += [{"name": env_name(k), "value": v} for k, v in sorted(plain.items())]
    if spec.secret_ref is not None:
        env.append(o.secret_env(env_name("api_key"), spec.secret_ref.name, spec.secret_ref.key))
    if spec.memory is not None:
        # The URL carries a password: referenced, like every other credential.
        ref = spec.memory.url_secret_ref
        env.append(o.secret_env(env_name("memory_url"), ref.name, ref.key))
    return env


def container(agent: QueryAgent, config: RenderConfig) -> dict[str, Any]:
    pin = agent.spec.resources
    resources = Resources(
        cpu=(pin.cpu if pin and pin.cpu else DEFAULT_RESOURCES.cpu),
        memory=(pin.memory if pin and pin.memory else DEFAULT_RESOURCES.memory),
    )
    probe = {"httpGet": {"path": "/healthz", "port": PORT_NAME}}
    return {
        "name": "query",
        "image": config.duet_image,
        "args": ["query", "serve"],
        "env": server_env(agent, config.cluster_domain),
        "ports": o.container_ports({PORT_NAME: DEFAULT_PORT}),
        "resources": o.container_resources(resources),
        "readinessProbe": probe | {"periodSeconds": 5},
        "livenessProbe": probe | {"periodSeconds": 20, "failureThreshold": 3},
        "securityContext": o.CONTAINER_SECURITY | {"readOnlyRootFilesystem": True},
        # The pod's own emptyDir, the one writable place under a read-only root.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }


def deployment(agent: QueryAgent, config: RenderConfig) -> o.Manifest:
    meta_labels = labels(agent)
    select = selector(agent)
    pod: dict[str, Any] = {
        "securityContext": o.POD_SECURITY | {"runAsUser": RUN_AS, "runAsGroup": RUN_AS},
        # It needs no Kubernetes API access: no token in the pod.
        "automountServiceAccountToken": False,
        "affinity": o.spread_replicas(select),
        "containers": [container(agent, config)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": o.metadata(agent, deployment_name(agent), meta_labels),
        "spec": {
            "replicas": agent.spec.replicas,
            "selector": {"matchLabels": select},
            "template": {"metadata": {"labels": meta_labels}, "spec": pod},
        },
    }


def build_query_agent(agent: QueryAgent, config: RenderConfig) -> list[o.Manifest]:
    name = deployment_name(agent)
    manifests = [
        o.service(agent, name, labels(agent), selector(agent), {PORT_NAME: DEFAULT_PORT}),
        deployment(agent, config),
    ]
    if agent.spec.replicas > 1:
        manifests.append(o.disruption_budget(agent, name, labels(agent), selector(agent)))
    return manifests
