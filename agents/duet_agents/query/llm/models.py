"""What the LLM engine asks the model for, what bounds it, and what it answers.

`SqlProposal` is the tool's arguments: the model's whole answer, data to check and never an
instruction. `LLMAnswer` is the engine's: the rows when a statement ran, otherwise an error
that says which kind of failure it was, so the caller can decide to fall back; and what the
model calls cost either way.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# A model's query is a few KiB (the firewall refuses more than 100,000 characters).
MAX_SQL_CHARS = 20_000
MAX_EXPLANATION_CHARS = 2_000


class SqlProposal(BaseModel):
    """Answer the question with one read-only SQL query over the schema given.

    `sql`: one SELECT (or WITH ... SELECT) statement in the dialect named, or an empty string
    when the question cannot be answered from this schema. `explanation`: one or two short
    sentences for the person who asked: what the query computes, or why there is none.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sql: str = Field(max_length=MAX_SQL_CHARS)
    explanation: str = Field(min_length=1, max_length=MAX_EXPLANATION_CHARS)


class AskPolicy(BaseModel):
    """How far the engine goes for one question."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Rounds after the first statement: a refused or failing statement goes back to the model
    # with the reason this many times at most.
    max_retries: int = Field(default=2, ge=0, le=5)
    # The schema sent with the question, in characters of its JSON (about 4 to a token).
    max_schema_chars: int = Field(default=24_000, ge=1_000)
    max_tables: int = Field(default=40, ge=1)
    # Values of a low-cardinality column shown to the model, at most.
    max_values: int = Field(default=12, ge=0)
    # A database error or refusal fed back to the model, at most.
    max_problem_chars: int = Field(default=1_000, ge=100)


class Outcome(StrEnum):
    """What became of one attempt."""

    OK = "ok"
    BAD_OUTPUT = "bad_output"  # the answer did not fit the tool's schema
    DECLINED = "declined"  # the model said the schema cannot answer it
    NOT_ALLOWED = "table_not_allowed"  # a table the agent may not read
    REFUSED = "refused"  # the SQL firewall refused the statement
    FAILED = "failed"  # the database could not run it (error, timeout, denied)


class Attempt(BaseModel):
    """One round: the statement the model wrote, and what became of it."""

    model_config = ConfigDict(frozen=True)

    sql: str | None
    outcome: Outcome
    problem: str | None = None
    # The firewall's category of a refusal, for the blocked-statements metric.
    category: str | None = None


class ErrorKind(StrEnum):
    """Why no statement ran: the first is the model's failure, the others the question's."""

    MODEL = "model"  # no usable answer: unavailable, timeout, rate limit, refusal, nonsense
    DECLINED = "declined"  # the model found nothing in the schema to answer with
    REFUSED = "refused"  # its last statement was refused (firewall or table filter)
    FAILED = "failed"  # its last statement failed on the database


class ModelUsage(BaseModel):
    """The model calls of one question: how many, their tokens, what they cost."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    # False when the model has no price in the table (its cost is counted as 0).
    price_known: bool


class LLMAnswer(BaseModel):
    """The engine's answer: the statement that ran with its rows, or an error and its kind."""

    model_config = ConfigDict(frozen=True)

    question: str
    # What ran: the model's statement as the firewall printed it, with the row cap.
    sql: str | None = None
    explanation: str = ""
    columns: list[dict[str, str]] = []
    rows: list[list[Any]] = []
    truncated: bool = False
    elapsed_ms: float = 0.0
    attempts: list[Attempt] = []
    usage: ModelUsage
    error: str | None = None
    error_kind: ErrorKind | None = None

    @property
    def answered(self) -> bool:
        return self.error is None
