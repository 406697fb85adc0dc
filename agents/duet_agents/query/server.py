"""The query server (`duet query serve`): read-only SQL and schema over HTTP, with metrics.

    POST /v1/ask      {"question": "..."}  -> the SQL it was read as, how, and the rows
                                            (the built-in engine, or a model: see ask())
    POST /v1/sql      {"sql": "..."}       -> columns, rows, truncated, the SQL that ran
    GET  /v1/schema                        -> the catalog the agent may show
    GET  /v1/memory/patterns[/...]         -> what the platform memory has learnt, when
                                              DUET_QUERY_MEMORY_URL names its database
    GET  /healthz, GET /metrics

Every statement passes the table filter and the SQL firewall, then runs on an engine whose
session is read-only at the database. Errors are one shape, `{"error": {"code", "message"}}`;
a refusal says why, and never echoes credentials. Engines are synchronous (see
engines/base.py), so handlers are plain functions that FastAPI runs in its thread pool,
drawing a connection from a small pool. `/v1/ask` is async: a model engine awaits its HTTP
calls on the loop and runs its statements in the pool's threads.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field, SecretStr

from duet_agents.llm.base import ChatModel
from duet_agents.llm.metrics import Instrumented, LLMMetrics
from duet_agents.memory.api import memory_router
from duet_agents.memory.store import MemoryStore
from duet_agents.query import guarded
from duet_agents.query.catalog import Catalog
from duet_agents.query.docs import render_markdown, sample_values
from duet_agents.query.engines import Engine, Limits, QueryError, connect
from duet_agents.query.engines.base import Result
from duet_agents.query.engines.errors import QueryTimeoutError
from duet_agents.query.engines.urls import DatabaseURL, Scheme, parse_url
from duet_agents.query.firewall import Dialect
from duet_agents.query.nl import Answered, Refused, Translator, ValueIndex, collect_values
from duet_agents.query.nl.embeddings import load_embedder
from duet_agents.query.settings import Engine as AskEngine
from duet_agents.query.settings import QueryServerSettings
from duet_agents.query.tables import TableFilter

if TYPE_CHECKING:
    from duet_agents.query.llm import LLMAnswer, SchemaIndex

# chDB holds one data directory per process: one connection. Servers take a few, so a slow
# query does not hold up every other request.
POOL_SIZE = 4
# The model used when a QueryAgent names a provider but no model (as the planner's defaults).
DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4.1"}
# One question through a model, every round included: beyond this the built-in engine answers.
MODEL_DEADLINE_SECONDS = 120.0


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


class ModelReport(BaseModel):
    """The model calls behind one answer: paid for whichever engine answered."""

    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    # False when the model has no price in the table (its cost is counted as 0).
    price_known: bool


class AskAnswer(QueryAnswer):
    question: str
    explanation: str
    # Who wrote the SQL: builtin, anthropic or openai.
    engine: str
    llm: ModelReport | None = None
    # Why the built-in engine answered although a model engine is configured.
    fallback_reason: str | None = None


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
        self.fallbacks = Counter(
            "duet_query_engine_fallbacks",
            "Questions the built-in engine answered because the model gave no usable answer.",
            registry=self.registry,
        )
        self.llm = LLMMetrics(self.registry)


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
        self.settings = settings
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
        self._schema_index: SchemaIndex | None = None
        self._model: ChatModel | None = None
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

    async def ask(self, question: str) -> AskAnswer:
        """`question` answered by the configured engine over the tables this agent may show,
        its SQL run like any other statement (table filter, firewall, read-only session).

        A model engine whose model gives no usable answer (unreachable, timed out, not
        configured, nonsense after the repairs) hands the question to the built-in engine,
        and the answer says so (`engine`, `fallback_reason`). A statement the model wrote
        that stays refused or failing is the answer: the built-in engine is not asked.
        """
        if self.settings.engine is AskEngine.BUILTIN:
            return await run_in_threadpool(self.ask_builtin, question)
        return await self.ask_model(question)

    def ask_builtin(self, question: str, *, fallback_reason: str | None = None) -> AskAnswer:
        """The built-in engine's SQL for `question`, run; ApiError 422 when it cannot read it."""
        translation = self._translate(question)
        if isinstance(translation, Refused):
            self.metrics.blocked.labels("cannot_answer").inc()
            raise ApiError(422, "cannot_answer", _refusal(translation))
        result = self.run_sql(translation.sql)
        return AskAnswer(
            **result.model_dump(),
            question=question,
            explanation=translation.explanation,
            engine="builtin",
            fallback_reason=fallback_reason,
        )

    async def ask_model(self, question: str) -> AskAnswer:
        # LangGraph and the model SDKs load here, on the first question to a model engine.
        from duet_agents.query.llm import ask_with_model  # noqa: PLC0415

        schema = await run_in_threadpool(self.schema_index)
        model = self.chat_model()
        try:
            answer = await asyncio.wait_for(
                ask_with_model(
                    question, model, schema=schema, execute=self._execute, tables=self.tables
                ),
                timeout=MODEL_DEADLINE_SECONDS,
            )
        except TimeoutError:
            reason = f"the {model.provider} model {model.model} gave no answer within "
            reason += f"{MODEL_DEADLINE_SECONDS:g} s"
            return await self._fall_back(question, reason, None)
        self._count(answer)
        report = _report(answer)
        if answer.answered:
            return AskAnswer(
                columns=answer.columns,
                rows=answer.rows,
                truncated=answer.truncated,
                sql=answer.sql or "",
                elapsed_ms=answer.elapsed_ms,
                question=question,
                explanation=answer.explanation,
                engine=model.provider,
                llm=report,
            )
        error = answer.error or "no statement ran"
        kind = str(answer.error_kind)
        if kind == "model":
            return await self._fall_back(question, error, report)
        if kind == "refused":
            raise ApiError(403, "refused", error)
        if kind == "failed":
            raise ApiError(422, "query_failed", error)
        raise ApiError(422, "cannot_answer", error)

    async def _fall_back(self, question: str, reason: str, report: ModelReport | None) -> AskAnswer:
        try:
            answer = await run_in_threadpool(self.ask_builtin, question, fallback_reason=reason)
        except ApiError as e:
            if e.code != "cannot_answer":
                raise
            message = f"{reason}; the built-in engine cannot answer it either: {e.message}"
            raise ApiError(503, "model_unavailable", message) from e
        self.metrics.fallbacks.inc()
        return answer.model_copy(update={"llm": report})

    def _translate(self, question: str) -> Answered | Refused:
        if self._translator is None:
            # The MiniLM linker for words the schema's own names and comments miss; None
            # when the model package is absent (words alone then).
            embedder = load_embedder()
            self._translator = Translator(self.catalog(), values=self.values(), embedder=embedder)
        translation: Answered | Refused = self._translator.answer(question)
        return translation

    def schema_index(self) -> SchemaIndex:
        """The catalog and its values, prepared for the model engine's retrieval."""
        if self._schema_index is None:
            from duet_agents.query.llm import SchemaIndex  # noqa: PLC0415

            catalog = self.catalog()
            self._schema_index = SchemaIndex(
                catalog,
                values=self.values(),
                default_schema=default_schema(self.url, catalog.dialect),
            )
        return self._schema_index

    def chat_model(self) -> ChatModel:
        """The configured model, counted under agent="query"; created on first use, on the
        event loop that will await it."""
        if self._model is None:
            from duet_agents.llm.factory import chat_model  # noqa: PLC0415

            provider = str(self.settings.engine)
            name = self.settings.model or DEFAULT_MODELS[provider]
            key = self.settings.api_key
            client = chat_model(
                provider,
                name,
                api_key=key.get_secret_value() if key is not None else None,
                base_url=self.settings.base_url,
            )
            self._model = Instrumented(client, "query", self.metrics.llm)
        return self._model

    def _execute(self, sql: str) -> Result:
        with self.pool.engine() as engine:
            return guarded.run(engine, sql)

    def _count(self, answer: LLMAnswer) -> None:
        for attempt in answer.attempts:
            if attempt.outcome == "refused":
                self.metrics.blocked.labels(attempt.category or "refused").inc()
            elif attempt.outcome == "table_not_allowed":
                self.metrics.blocked.labels("table_not_allowed").inc()
        if answer.answered:
            self.metrics.rows.observe(len(answer.rows))

    async def aclose(self) -> None:
        if self._model is not None:
            await self._model.aclose()
            self._model = None
        self.pool.close()

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


class _MemoryStoreOnDemand:
    """The memory store, opened at its first request (a database that is down must not keep
    the server from answering questions) and once, whichever thread asks first."""

    def __init__(self, url: SecretStr | None) -> None:
        self._url = url
        self._store: MemoryStore | None = None
        self._lock = threading.Lock()

    def store(self) -> MemoryStore:
        with self._lock:
            if self._store is None:
                assert self._url is not None
                self._store = MemoryStore.open(self._url.get_secret_value())
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def create_app(
    settings: QueryServerSettings, *, engine_factory: Callable[[], Engine] | None = None
) -> FastAPI:
    service = QueryService(settings, engine_factory)

    memory = _MemoryStoreOnDemand(settings.memory_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await service.aclose()
        memory.close()

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
    async def ask_endpoint(body: AskRequest) -> AskAnswer:
        """Answer a question in plain English: the SQL it was read as, how, and the rows."""
        with service.observed("/v1/ask"):
            try:
                return await service.ask(body.question)
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

    if settings.memory_url is not None:
        app.include_router(memory_router(memory.store))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _refusal(translation: Refused) -> str:
    detail = translation.reason
    if translation.unlinked:
        detail += f" (not found in the schema: {', '.join(translation.unlinked)})"
    return detail


def _report(answer: LLMAnswer) -> ModelReport:
    usage = answer.usage
    return ModelReport(
        provider=usage.provider,
        model=usage.model,
        calls=usage.calls,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=float(usage.cost_usd),
        price_known=usage.price_known,
    )
