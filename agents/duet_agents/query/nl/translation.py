"""What the built-in engine returns: SQL with how the question was read, or a refusal with why.

`Translation` is a union discriminated by `kind`, so it serialises to JSON and back:

    {"kind": "sql", "question": ..., "sql": ..., "explanation": ..., "reading": {...}}
    {"kind": "refused", "question": ..., "reason": ..., "unlinked": [...], "ambiguous": [...]}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from duet_agents.query.firewall import Dialect


class ReadingSummary(BaseModel):
    """How the question was read, part by part."""

    model_config = ConfigDict(frozen=True)

    # "'revenue' -> column orders.total_amount (comment)", one per linked phrase.
    links: list[str] = []
    tables: list[str] = []
    measures: list[str] = []
    filters: list[str] = []
    group_by: list[str] = []
    order_by: str | None = None
    limit: int | None = None
    joins: list[str] = []
    notes: list[str] = []


class Answered(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["sql"] = "sql"
    question: str
    dialect: Dialect
    # Passes the firewall as it is; the firewall adds the row cap when it runs.
    sql: str
    # One paragraph for a reader.
    explanation: str
    reading: ReadingSummary


class Ambiguity(BaseModel):
    model_config = ConfigDict(frozen=True)

    words: str
    candidates: list[str]


class Refused(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["refused"] = "refused"
    question: str
    reason: str
    # Words that link to no table, column or value.
    unlinked: list[str] = []
    ambiguous: list[Ambiguity] = []


Translation = Annotated[Answered | Refused, Field(discriminator="kind")]
