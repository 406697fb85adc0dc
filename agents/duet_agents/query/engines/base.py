"""What every engine offers: its dialect, introspection, read-only execution, and limits.

Engines are synchronous on purpose. chDB is an in-process engine with only a blocking API;
clickhouse-connect's synchronous client is its mature path (and the only one with a chDB
backend); psycopg's is as complete as its async one. The query server (FastAPI) calls an
engine through its thread pool (`run_in_threadpool`), and the command line calls it directly,
so one blocking API serves both without an event loop in the CLI. An engine may be shared
between threads: each one serialises what its driver cannot run concurrently.

Every statement runs read-only at the database level (a read-only transaction, ClickHouse's
`readonly=1`), independently of the SQL firewall, which callers apply above the engine
(`duet_agents.query.guarded`). Either guard alone keeps the data unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from duet_agents.query.catalog import Catalog
from duet_agents.query.firewall import DEFAULT_MAX_ROWS, Dialect

DEFAULT_TIMEOUT_SECONDS = 30.0
# A safety valve for pathological rows (huge strings, arrays), far above what max_rows rows of
# an analytics answer take.
DEFAULT_MAX_RESULT_BYTES = 64 * 2**20


class Limits(BaseModel):
    """How much one statement may return and how long it may run."""

    model_config = ConfigDict(frozen=True)

    max_rows: int = Field(DEFAULT_MAX_ROWS, ge=1, le=10_000_000)
    timeout_seconds: float = Field(DEFAULT_TIMEOUT_SECONDS, gt=0, le=24 * 3600)
    # ClickHouse only: max_result_bytes (with result_overflow_mode = 'break').
    max_result_bytes: int = Field(DEFAULT_MAX_RESULT_BYTES, ge=1)


@dataclass(frozen=True)
class ResultColumn:
    """A result column: its name and the database's name for its type."""

    name: str
    type: str


@dataclass(frozen=True)
class Result:
    """At most `max_rows` rows; `truncated` when the statement had more."""

    columns: list[ResultColumn]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed_ms: float
    # The statement that ran.
    sql: str = field(default="", repr=False)


class Engine(ABC):
    """A connection to one database, executing read-only under `limits`."""

    dialect: ClassVar[Dialect]

    def __init__(self, limits: Limits, description: str) -> None:
        self.limits = limits
        # The URL with its password replaced: what logs and errors may show.
        self.description = description

    @abstractmethod
    def introspect(self) -> Catalog:
        """The schema this connection can read, with declared and inferred joins."""

    @abstractmethod
    def execute(self, sql: str) -> Result:
        """Run one statement read-only and return at most `limits.max_rows` rows.

        Raises a QueryError: QueryTimeoutError, QueryDeniedError (a write, a setting change,
        a privilege), QueryFailedError, ConnectionFailedError.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the connection; closing twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


def cap(rows: list[tuple[Any, ...]], max_rows: int) -> tuple[list[tuple[Any, ...]], bool]:
    """The first `max_rows` rows of (at most max_rows + 1) fetched, and whether there were
    more."""
    return rows[:max_rows], len(rows) > max_rows
