"""The QueryAgent resource: a read-only, natural-language query service over a platform.

The operator runs it as a Deployment and a Service of `duet query serve`, connected with the
platform's read-only credentials (or a connection URL the user keeps in a Secret), and reports
where to reach it. Nothing in it can grant write access: the SQL firewall and a read-only
database session stand between a question and the data whatever the spec says.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field

from duet_agents.planner.models import ResourcesPin
from duet_agents.query.settings import Engine as QueryEngine
from duet_agents.schema import CamelModel, ObjectName
from duet_operator.models.common import (
    API_VERSION,
    Condition,
    ObjectMeta,
    SecretKeyRef,
    cel,
    validated_by,
)


class Backend(enum.StrEnum):
    CLICKHOUSE = "clickhouse"
    POSTGRES = "postgres"


class PlatformSource(CamelModel):
    """A DataPlatform in the same namespace; the agent uses its read-only user."""

    name: ObjectName
    backend: Backend = Field(
        default=Backend.CLICKHOUSE, description="Which of the platform's databases to query."
    )


class QueryLimits(CamelModel):
    max_rows: int = Field(default=1000, ge=1, le=100_000, description="Rows per answer, at most.")
    timeout_seconds: int = Field(
        default=30, ge=1, le=600, description="Per statement, enforced by the database too."
    )
    requests_per_minute: int = Field(
        default=60, ge=1, le=10_000, description="Per client, before HTTP 429."
    )


TablePattern = Annotated[str, Field(min_length=1, max_length=255)]


class TableFilter(CamelModel):
    """Glob patterns over `database.table` (`sales.*`, `*.orders`); deny wins over allow."""

    allow: list[TablePattern] = Field(
        default_factory=lambda: ["*"],
        max_length=64,
    )
    deny: list[TablePattern] = Field(
        default_factory=list,
        max_length=64,
    )


class QueryMemory(CamelModel):
    """The platform memory's patterns on the agent's server (`GET /v1/memory/patterns`).

    A Secret of the agent's own namespace, not the operator's: a pod can only reference
    Secrets in its namespace, and the agent should read the memory as a role of its own that
    can only read, not with the operator's credentials that write it."""

    url_secret_ref: SecretKeyRef = Field(
        description="A Secret key holding the URL of the operator's PostgreSQL memory "
        "(postgresql://user:password@host:5432/db), ideally of a role that can only read its "
        "tables. The operator's SQLite memory is a file on its own volume: it cannot be shared."
    )


class QueryAgentSpec(CamelModel):
    model_config = validated_by(
        cel(
            "has(self.platformRef) != has(self.connectionSecretRef)",
            "set exactly one of platformRef (a DataPlatform's read-only user) and "
            "connectionSecretRef (a Secret key holding a database URL)",
        ),
        cel(
            "self.engine != 'builtin' || (!has(self.model) && !has(self.secretRef))",
            "model and secretRef apply to the anthropic and openai engines only",
        ),
    )

    platform_ref: PlatformSource | None = None
    connection_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="A Secret key holding a database URL (clickhouse://, postgresql://) whose "
        "user should be read-only; the agent's sessions are read-only either way.",
    )
    databases: list[ObjectName] = Field(
        default_factory=list,
        max_length=64,
        description="The databases (ClickHouse) or schemas (PostgreSQL) to answer from; "
        "empty means every one the user can read.",
    )
    engine: QueryEngine = QueryEngine.BUILTIN
    model: str | None = Field(default=None, max_length=200, description="e.g. claude-sonnet-4-5")
    base_url: str | None = Field(
        default=None,
        alias="baseURL",
        max_length=2048,
        pattern=r"^https?://",
        description="An OpenAI-compatible endpoint (vLLM, Ollama, ...) or an Anthropic proxy.",
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None, description="The Secret key holding the model provider's API key."
    )
    limits: QueryLimits = Field(default_factory=QueryLimits)
    tables: TableFilter = Field(default_factory=TableFilter)
    replicas: int = Field(default=1, ge=0, le=20)
    resources: ResourcesPin | None = Field(
        default=None, description="Per replica; requests equal limits."
    )
    memory: QueryMemory | None = Field(
        default=None,
        description="Serve what the platform memory has learnt (GET /v1/memory/patterns); "
        "unset: the server has no memory endpoints.",
    )


class QueryAgentPhase(enum.StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class QueryAgentStatus(CamelModel):
    phase: QueryAgentPhase | None = None
    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(default_factory=list)
    endpoint: str | None = Field(default=None, description="The query server's URL in-cluster.")
    ready_replicas: int = Field(default=0, ge=0)


class QueryAgent(CamelModel):
    api_version: Literal["duet.aidatalabs.ai/v1alpha1"] = API_VERSION
    kind: Literal["QueryAgent"] = "QueryAgent"
    metadata: ObjectMeta
    spec: QueryAgentSpec
    status: QueryAgentStatus = Field(default_factory=QueryAgentStatus)
