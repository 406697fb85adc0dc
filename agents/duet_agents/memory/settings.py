"""The memory's settings, for the operator's settings to embed as `memory`: then
`DUET_MEMORY__URL` sets the store, as `duet memory` reads it."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from duet_agents.memory.lessons import MemoryPolicy


class MemorySettings(BaseModel):
    # A secret: a PostgreSQL URL carries the password, and settings get logged.
    url: SecretStr | None = Field(
        default=None,
        description="sqlite:///FILE or postgresql://...; unset: memory.store.default_url().",
    )
    policy: MemoryPolicy = Field(default_factory=MemoryPolicy)
