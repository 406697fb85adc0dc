"""The memory's settings, for the operator's settings to embed as `memory`: then
`DUET_MEMORY__URL` sets the store, as `duet memory` reads it, and `DUET_MEMORY__ENABLED`
turns it off."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from duet_agents.memory.lessons import MemoryPolicy


class MemorySettings(BaseModel):
    enabled: bool = Field(
        default=True,
        description="Record designs, outcomes and remediations and learn from them; off, the "
        "planner and the healer work as if nothing had been recorded.",
    )
    # A secret: a PostgreSQL URL carries the password, and settings get logged.
    url: SecretStr | None = Field(
        default=None,
        description="sqlite:///FILE or postgresql://...; unset: memory.store.default_url().",
    )
    timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Longest wait for one lookup or record; past it the operator goes on "
        "without (a slow store never holds up a reconcile).",
    )
    policy: MemoryPolicy = Field(default_factory=MemoryPolicy)
