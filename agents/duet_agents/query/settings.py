"""What `duet query serve` reads from its environment: the one contract between the
operator, which renders a QueryAgent's Deployment, and the server that runs in it.

The operator builds the Deployment's env from these field names (`env_name`), so the two
cannot drift apart. Credentials arrive as separate variables from Secrets and are held as
`SecretStr`, so they never show in a repr, a log line or an error.
"""

from __future__ import annotations

import enum

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "DUET_QUERY_"
DEFAULT_PORT = 8080


class Engine(enum.StrEnum):
    BUILTIN = "builtin"
    ANTHROPIC = "anthropic"
    OPENAI = "openai"


class QueryServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    database_url: str = Field(
        description="clickhouse://user@host:8123/db, postgresql://user@host/db or chdb:///path; "
        "the password may come separately in database_password."
    )
    database_password: SecretStr | None = None
    databases: list[str] = Field(default_factory=list)
    engine: Engine = Engine.BUILTIN
    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    max_rows: int = Field(default=1000, ge=1)
    timeout_seconds: int = Field(default=30, ge=1)
    requests_per_minute: int = Field(default=60, ge=1)
    tables_allow: list[str] = Field(default_factory=lambda: ["*"])
    tables_deny: list[str] = Field(default_factory=list)
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    # A secret: a PostgreSQL URL carries the password, and settings get logged.
    memory_url: SecretStr | None = Field(
        default=None,
        description="The platform memory's database (the operator's PostgreSQL memory, or a "
        "SQLite file): with it, GET /v1/memory/patterns shows what Duet has learnt.",
    )


def env_name(field: str) -> str:
    """The environment variable of a settings field: `max_rows` -> `DUET_QUERY_MAX_ROWS`."""
    if field not in QueryServerSettings.model_fields:
        raise KeyError(f"QueryServerSettings has no field {field!r}")
    return f"{ENV_PREFIX}{field.upper()}"
