"""The query server (`duet query serve`): read-only SQL and schema over HTTP, with metrics.

    POST /v1/ask      {"question": "..."}  -> the SQL it was read as, how, and the rows
    POST /v1/sql      {"sql": "..."}       -> columns, rows, truncated, the SQL that ran
    GET  /v1/schema                        -> the catalog the agent may show
    GET  /healthz, GET /metrics

Every statement passes the table filter and the SQL firewall, then runs on an engine whose
session is read-only at the database. Errors are one shape, `{"error": {"code", "message"}}`;
a refusal says why, and never echoes credentials. Engines are synchronous (see
engines/base.py), so handlers are plain functions that FastAPI runs in its thread pool,
drawing a connection from a small pool.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field

from duet_agents.query import guarded
from duet_agents.query.catalog import Catalog
from duet_agents.query.docs import render_markdown, sample_values
from duet_agents.query.engines import Engine, Limits, QueryError, connect
from duet_agents.query.engines.errors import QueryTimeoutError
from duet_agents.query.engines.urls import DatabaseURL, Scheme, parse_url
from duet_agents.query.firewall import Dialect
from duet_agents.query.nl import Refused, Translator, ValueIndex, collect_values
from duet_agents.query.settings import QueryServerSettings
from duet_agents.query.tables import TableFilter

# chDB holds one data directory per process: one connection. Servers take a few, so a slow
# query does not hold up every other request.
POOL_SIZE = 4


class SqlRequest(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000)


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=2_000)


class QueryAnswer(BaseModel):
    columns: list[dict[str, str]]
    rows: list[list[Any]]
    truncated: bool
    sql: str
    elapsed_ms: float


class AskAnswer(QueryAnswer):
    question: str
    explanation: str
    engine: str


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Metrics:
    """The server's own registry: two apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "duet_query_requests",
            "Requests to the query server, by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "duet_query_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.blocked = Counter(
            "duet_query_blocked",
            "Statements refused before reaching the database, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.rows = Histogram(
            "duet_query_rows_returned",
            "Rows in an answer.",
            buckets=(0, 1, 10, 100, 1000, 10_000, 100_000),
            registry=self.registry,
        )


class RateLimiter:
    """At most `per_minute` requests per client in any sliding minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.seen: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """None when `client` may go on; otherwise the seconds until it may."""
        now = self.clock()
        with self.lock:
            times = self.seen.setdefault(client, deque())
            while times and now - times[0] >= 60:
                times.popleft()
            if len(times) >= self.per_minute:
                return max(1, math.ceil(60 - (now - times[0])))
            times.append(now)
            return None


class EnginePool:
    def __init__(self, factory: Callable[[], Engine], size: int) -> None:
        self.factory = factory
        self.size = size
        self.idle: queue.LifoQueue[Engine] = queue.LifoQueue()
        self.made = 0
        self.lock = threading.Lock()

    @contextmanager
    def engine(self) -> Iterator[Engine]:
        engine = self._take()
        try:
            yield engine
        except QueryError:
            # A failed statement leaves the connection usable; a lost one is replaced.
            self.idle.put(engine)
            raise
        except BaseException:
            engine.close()
            with self.lock:
                self.made -= 1
            raise
        else:
            self.idle.put(engine)

    def _take(self) -> Engine:
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            pass
        with self.lock:
            grow = self.made < self.size
            if grow:
                self.made += 1
        if grow:
            try:
                return self.factory()
            except BaseException:
                with self.lock:
                    self.made -= 1
                raise
        return self.idle.get()

    def close(self) -> None:
        while True:
            try:
                self.idle.get_nowait().close()
            except queue.Empty:
                return


def database_url(settings: QueryServerSettings) -> DatabaseURL:
    """The URL with the password from its own variable, which the operator references from
    a Secret so that it never sits in the Deployment."""
    url = parse_url(settings.database_url)
    if settings.database_password is not None:
        url = url.model_copy(update={"password": settings.database_password})
    return url


def default_schema(url: DatabaseURL, dialect: Dialect) -> str:
    if dialect == Dialect.POSTGRES:
        return "public"
    return url.database or "default"


class QueryService:
    """What the endpoints do, apart from HTTP: the table filter, the firewall, the pool."""

    def __init__(
        self, settings: QueryServerSettings, engine_factory: Callable[[], Engine] | None
    ) -> None:
        self.url = database_url(settings)
        limits = Limits(max_rows=settings.max_rows, timeout_seconds=settings.timeout_seconds)
        url = self.url
        factory = engine_factory or (lambda: connect(url, limits=limits))
        self.pool = EnginePool(factory, 1 if url.scheme is Scheme.CHDB else POOL_SIZE)
        self.tables = TableFilter(tuple(settings.tables_allow), tuple(settings.tables_deny))
        self.metrics = Metrics()
        self.limiter = RateLimiter(settings.requests_per_minute)
        self._catalog: Catalog | None = None
        self._docs: str | None = None
        self._values: ValueIndex | None = None
        self._translator: Translator | None = None
        self.databases = frozenset(settings.databases)

    def catalog(self) -> Catalog:
        # Introspected once: the schema of an analytics database changes by migrations, and a
        # restart of the agent (a new ReplicaSet) is how those reach it.
        if self._catalog is None:
            with self.pool.engine() as engine:
                catalog = engine.introspect()
            if self.databases:
                # Only what the agent is for: same-named tables elsewhere would make questions
                # ambiguous, and the docs longer than anyone reads.
                schemas = [s for s in catalog.schemas if s.name in self.databases]
                catalog = catalog.model_copy(update={"schemas": schemas})
            # One pass of the filter drops the hidden tables and every join that names one.
            self._catalog = self.tables.catalog(catalog)
        return self._catalog

    def docs(self) -> str:
        if self._docs is None:
            catalog = self.catalog()
            with self.pool.engine() as engine:
                samples = sample_values(engine, catalog)
            self._docs = render_markdown(catalog, samples=samples)
        return self._docs

    def values(self) -> ValueIndex:
        if self._values is None:
            catalog = self.catalog()
            with self.pool.engine() as engine:
                self._values = collect_values(engine, catalog)
        return self._values

    def ask(self, question: str) -> AskAnswer:
        """The built-in engine's SQL for `question` over the tables this agent may show, run
        like any other statement (table filter, firewall, read-only session)."""
        if self._translator is None:
            self._translator = Translator(self.catalog(), values=self.values())
        translation = self._translator.answer(question)
        if isinstance(translation, Refused):
            self.metrics.blocked.labels("cannot_answer").inc()
            detail = translation.reason
            if translation.unlinked:
                detail += f" (not found in the schema: {', '.join(translation.unlinked)})"
            raise ApiError(422, "cannot_answer", detail)
        result = self.run_sql(translation.sql)
        return AskAnswer(
            **result.model_dump(),
            question=question,
            explanation=translation.explanation,
            engine="builtin",
        )

    def run_sql(self, sql: str) -> QueryAnswer:
        with self.pool.engine() as engine:
            schema = default_schema(self.url, engine.dialect)
            refused = self.tables.refused_tables(sql, engine.dialect, schema)
            if refused:
                self.metrics.blocked.labels("table_not_allowed").inc()
                raise ApiError(
                    403, "table_not_allowed", f"not readable by this agent: {', '.join(refused)}"
                )
            try:
                result = guarded.run(engine, sql)
            except guarded.QueryRefusedError as e:
                self.metrics.blocked.labels(str(e.category or "refused")).inc()
                raise ApiError(403, "refused", e.reason) from e
            except QueryTimeoutError as e:
                raise ApiError(504, "timeout", str(e)) from e
            except QueryError as e:
                raise ApiError(422, e.code or "query_failed", str(e)) from e
        self.metrics.rows.observe(len(result.rows))
        return QueryAnswer(
            columns=[{"name": c.name, "type": c.type} for c in result.columns],
            rows=[list(r) for r in result.rows],
            truncated=result.truncated,
            sql=result.sql,
            elapsed_ms=result.elapsed_ms,
        )

    @contextmanager
    def observed(self, endpoint: str) -> Iterator[None]:
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except ApiError as e:
            outcome = e.code
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            self.metrics.requests.labels(endpoint, outcome).inc()
            self.metrics.duration.labels(endpoint).observe(time.perf_counter() - started)

    def throttled(self, client: str, path: str) -> JSONResponse | None:
        wait = self.limiter.retry_after(client)
        if wait is None:
            return None
        self.metrics.requests.labels(path, "rate_limited").inc()
        message = f"more than {self.limiter.per_minute} requests a minute; retry in {wait} s"
        return JSONResponse(
            {"error": {"code": "rate_limited", "message": message}},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )


def create_app(
    settings: QueryServerSettings, *, engine_factory: Callable[[], Engine] | None = None
) -> FastAPI:
    service = QueryService(settings, engine_factory)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        service.pool.close()

    app = FastAPI(
        title="Duet query server",
        version="v1",
        description="Read-only SQL and schema over a platform's data.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": error.code, "message": error.message}}, status_code=error.status
        )

    @app.middleware("http")
    async def rate_limit(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/v1/"):
            client = request.client.host if request.client else "unknown"
            refusal = service.throttled(client, request.url.path)
            if refusal is not None:
                return refusal
        return await call_next(request)

    @app.post("/v1/sql", response_model=QueryAnswer)
    def sql_endpoint(body: SqlRequest) -> QueryAnswer:
        """Run one read-only statement (SELECT, WITH, UNION, EXPLAIN), capped in rows."""
        with service.observed("/v1/sql"):
            return service.run_sql(body.sql)

    @app.post("/v1/ask", response_model=AskAnswer)
    def ask_endpoint(body: AskRequest) -> AskAnswer:
        """Answer a question in plain English: the SQL it was read as, how, and the rows."""
        with service.observed("/v1/ask"):
            try:
                return service.ask(body.question)
            except QueryError as e:
                raise ApiError(503, "database_unavailable", str(e)) from e

    @app.get("/v1/schema", response_model=Catalog)
    def schema_endpoint() -> Catalog:
        """The databases, tables, columns, keys and joins this agent may query."""
        with service.observed("/v1/schema"):
            try:
                return service.catalog()
            except QueryError as e:
                raise ApiError(503, "database_unavailable", str(e)) from e

    @app.get("/v1/docs", response_class=PlainTextResponse)
    def docs_endpoint() -> str:
        """Markdown documentation of the schema, with a Mermaid ERD of its relationships."""
        with service.observed("/v1/docs"):
            try:
                return service.docs()
            except QueryError as e:
                raise ApiError(503, "database_unavailable", str(e)) from e

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
