"""`MemoryStore`: the memory's one code path over SQLite (the default) and PostgreSQL.

    store = MemoryStore.open("sqlite:///var/lib/duet/memory.db")   # creates and migrates
    store.record_design("shop/web", request, design, recorded_at=now)
    store.record_outcome("shop/web", Outcome(observed_at=now, time_to_ready_seconds=95))
    store.record_remediation("shop/web", RemediationRecord.of(name, symptom, plan, ...))
    lessons = store.lessons_for(request)                 # then memory.apply_lessons(...)
    stats = store.action_stats(SymptomType.OOM_KILLED, Component.CLICKHOUSE)  # rank_actions

URLs: `sqlite:///relative.db`, `sqlite:////absolute.db`, `postgresql://user:pw@host/db`
(psycopg 3 is the driver whatever the URL says). Calls are synchronous and short; an async
caller runs them in a thread (`asyncio.to_thread`). One store may be shared by threads, and
any number of processes may write to one database at once: on SQLite every write takes the
database's write lock when it begins (`BEGIN IMMEDIATE`, waiting up to 30 s for it), so no
transaction has to be retried; PostgreSQL needs nothing special for these inserts.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    Float,
    Select,
    String,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from duet_agents.healer.actions import ActionType
from duet_agents.healer.history import DecisionPhase
from duet_agents.healer.observations import Component
from duet_agents.healer.symptoms import SymptomType
from duet_agents.memory.lessons import (
    DESIGN_LESSONS,
    Lesson,
    MemoryPolicy,
    PastRemediation,
    derive_lessons,
    median_growth,
    parse_pattern_id,
    pattern_id,
)
from duet_agents.memory.patterns import EvidenceRecord, MemoryExport, Pattern, PatternDetail
from duet_agents.memory.ranking import ActionStats
from duet_agents.memory.records import SETTLED_PHASES, Outcome, RemediationRecord
from duet_agents.memory.schema import designs, migrate, outcomes, remediations
from duet_agents.memory.similarity import Figures, Profile, description_words, reach
from duet_agents.planner.models import Availability, PlanRequest, PlatformDesign

if TYPE_CHECKING:
    # Only its protocol: the embedding package loads the NL linker with it.
    from duet_agents.query.nl.embeddings import Embedder

URL_ENV = "DUET_MEMORY__URL"
# Any number that is ours: PostgreSQL's advisory lock taken while migrating.
_MIGRATION_LOCK = 0x6475_6574_6D65_6D  # "duetmem"
_WRITE = "duet_write"
_SQLITE_BUSY_SECONDS = 30
_N_COLUMNS = ("n_data", "n_ingest", "n_retention", "n_queries", "n_latency")


def _lookup() -> Select[Any]:
    """The settled, lesson-teaching remediations of designs near a point: a box the index
    narrows, then the ball in it whose designs can reach the policy's similarity. Built
    once: the lookup runs on every planning, and building the statement costs more than
    SQLite takes to run it."""
    squared = sum(
        (
            (designs.c[c] - bindparam(c, type_=Float)) * (designs.c[c] - bindparam(c, type_=Float))
            for c in _N_COLUMNS
        ),
        literal(0.0),
    )
    # Our own enum values, as literals: an IN list of parameters is re-rendered every call.
    teaching: list[ColumnElement[str]] = [
        literal_column(f"'{action}'") for action in sorted(DESIGN_LESSONS)
    ]
    settled: list[ColumnElement[str]] = [
        literal_column(f"'{phase}'") for phase in sorted(SETTLED_PHASES)
    ]
    return (
        select(
            designs.c.platform,
            designs.c.availability,
            *(designs.c[c] for c in _N_COLUMNS),
            designs.c.words,
            designs.c.embedding,
            remediations.c.symptom,
            remediations.c.component,
            remediations.c.action,
            remediations.c.before,
            remediations.c.after,
            remediations.c.phase,
            remediations.c.decided_at,
        )
        .join(remediations, remediations.c.design_id == designs.c.id)
        .where(
            designs.c.availability == bindparam("availability", type_=String),
            *(
                designs.c[c].between(
                    bindparam(f"{c}_low", type_=Float), bindparam(f"{c}_high", type_=Float)
                )
                for c in _N_COLUMNS
            ),
            squared <= bindparam("limit2", type_=Float),
            remediations.c.action.in_(teaching),
            remediations.c.phase.in_(settled),
        )
    )


_LOOKUP = _lookup()


class UnknownPlatformError(LookupError):
    """An outcome or remediation for a platform whose design was never recorded."""


def default_url() -> str:
    """`$DUET_MEMORY__URL`, else a SQLite file in the user's state directory."""
    if url := os.environ.get(URL_ENV):
        return url
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return f"sqlite:///{state / 'duet' / 'memory.db'}"


def database_url(url: str) -> URL:
    """The URL SQLAlchemy connects with; ValueError for anything but SQLite and PostgreSQL."""
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy's ArgumentError; its message repeats the URL, password too
        raise ValueError(
            "memory URL: not a database URL (sqlite:///FILE or postgresql://...)"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    raise ValueError(f"memory URL: {backend} is not supported; use sqlite:/// or postgresql://")


class MemoryStore:
    """Designs, outcomes and remediations of every platform, and the lessons they teach."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, url: str | None = None) -> MemoryStore:
        """The store at `url` (default: `default_url()`), created or migrated as needed."""
        parsed = database_url(url or default_url())
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
        store = cls(engine)
        try:
            store._migrate()
        except Exception:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # URL's own rendering masks the password.
        return f"MemoryStore({self._engine.url.render_as_string(hide_password=True)!r})"

    # -- recording ---------------------------------------------------------------------------

    def record_design(
        self,
        platform: str,
        request: PlanRequest,
        design: PlatformDesign,
        *,
        recorded_at: datetime,
        embedder: Embedder | None = None,
    ) -> int:
        """Record the design `platform` was given for `request`; its id. The description is
        kept only as word hashes (and an embedding, with `embedder`), never as text."""
        values = _profile_values(Figures.of(request.requirements), request.description, embedder)
        values |= {
            "platform": platform,
            "recorded_at": _utc(recorded_at),
            "source": "planner",
            "design": design.model_dump(mode="json", by_alias=True),
            "planner": design.planner.provider,
            "model": design.planner.model,
            "cost_usd": design.estimated_monthly_cost_usd,
        }
        with self._writing() as conn:
            return _new_id(conn.execute(designs.insert().values(values)))

    def record_outcome(self, platform: str, outcome: Outcome) -> int:
        """Record how `platform`'s current design fares; the outcome's id."""
        with self._writing() as conn:
            design_id = _design_at(conn, platform, outcome.observed_at)
            row = conn.execute(
                outcomes.insert().values(
                    design_id=design_id,
                    observed_at=_utc(outcome.observed_at),
                    time_to_ready_seconds=outcome.time_to_ready_seconds,
                    symptom=outcome.symptom,
                    component=outcome.component,
                    oom_kills=outcome.oom_kills,
                    disk_used_fraction=outcome.disk_used_fraction,
                )
            )
            return _new_id(row)

    def record_remediation(self, platform: str, remediation: RemediationRecord) -> None:
        """Record a healer decision, or its new phase and sizes if its name is known already
        (it stays with the design it was decided under)."""
        with self._writing() as conn:
            design_id = _design_at(conn, platform, remediation.decided_at)
            values = {
                "name": remediation.name,
                "design_id": design_id,
                "symptom": remediation.symptom,
                "component": remediation.component,
                "action": remediation.action,
                "before": remediation.before,
                "after": remediation.after,
                "phase": remediation.phase,
                "decided_at": _utc(remediation.decided_at),
            }
            insert = _insert_for(conn)(remediations).values(values)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[remediations.c.name],
                    set_={
                        "phase": insert.excluded.phase,
                        "before": func.coalesce(insert.excluded.before, remediations.c.before),
                        "after": func.coalesce(insert.excluded.after, remediations.c.after),
                    },
                )
            )

    # -- reading -----------------------------------------------------------------------------

    def lessons_for(
        self,
        request: PlanRequest,
        *,
        embedder: Embedder | None = None,
        policy: MemoryPolicy | None = None,
    ) -> list[Lesson]:
        """The lessons settled remediations on platforms similar to `request` teach."""
        figures = Figures.of(request.requirements)
        embedding = _embed(embedder, request.description)
        profile = Profile(
            coordinates=figures.coordinates(),
            words=description_words(request.description),
            embedding=tuple(embedding) if embedding else None,
        )
        policy = policy or MemoryPolicy()
        limit = reach(
            policy.min_similarity,
            described=bool(profile.words) or profile.embedding is not None,
        )
        parameters: dict[str, Any] = {"availability": figures.availability, "limit2": limit**2}
        for column, value in zip(_N_COLUMNS, profile.coordinates, strict=False):
            parameters |= {column: value, f"{column}_low": value - limit}
            parameters[f"{column}_high"] = value + limit
        with self._engine.connect() as conn:
            past = [_past(row) for row in conn.execute(_LOOKUP, parameters)]
        return derive_lessons(profile, past, policy)

    def action_stats(
        self, symptom: SymptomType, component: Component | None = None
    ) -> dict[ActionType, ActionStats]:
        """How each action ended on `symptom` (on `component`), over every platform."""
        same_component = (
            remediations.c.component.is_(None)
            if component is None
            else remediations.c.component == component
        )
        query = (
            select(remediations.c.action, remediations.c.phase, func.count())
            .where(
                remediations.c.symptom == symptom,
                same_component,
                remediations.c.phase.in_(list(SETTLED_PHASES)),
            )
            .group_by(remediations.c.action, remediations.c.phase)
        )
        counts: dict[ActionType, ActionStats] = defaultdict(ActionStats)
        with self._engine.connect() as conn:
            for action, phase, count in conn.execute(query):
                verified = phase == DecisionPhase.VERIFIED
                counts[ActionType(action)] += ActionStats(
                    verified=count if verified else 0, failed=0 if verified else count
                )
        return dict(counts)

    def patterns(self) -> list[Pattern]:
        """Every pattern recorded, by id."""
        with self._engine.connect() as conn:
            records = _evidence_rows(conn, None)
        return [
            Pattern.model_validate(detail.model_dump(exclude={"evidence"}))
            for detail in _details(records)
        ]

    def pattern(self, pattern: str) -> PatternDetail | None:
        """One pattern with every remediation behind it; None when none is recorded.
        ValueError when `pattern` is not `<symptom>/<component>/<action>`."""
        parts = parse_pattern_id(pattern)
        with self._engine.connect() as conn:
            details = _details(_evidence_rows(conn, parts))
        return details[0] if details else None

    # -- forgetting, export, import ----------------------------------------------------------

    def forget(self, pattern: str) -> int:
        """Remove the pattern's remediations, the outcomes that recorded its symptom on the
        same designs, and imported platforms left with nothing; how many remediations went."""
        symptom, component, action = parse_pattern_id(pattern)
        same = and_(
            remediations.c.symptom == symptom,
            remediations.c.component.is_(None)
            if component is None
            else remediations.c.component == component,
            remediations.c.action == action,
        )
        with self._writing() as conn:
            design_ids = sorted(
                set(conn.execute(select(remediations.c.design_id).where(same)).scalars())
            )
            removed = conn.execute(delete(remediations).where(same)).rowcount
            for chunk in _chunks(design_ids, 500):
                conn.execute(
                    delete(outcomes).where(
                        outcomes.c.design_id.in_(chunk),
                        outcomes.c.symptom == symptom,
                        outcomes.c.component.is_(None)
                        if component is None
                        else outcomes.c.component == component,
                    )
                )
            conn.execute(
                delete(designs).where(
                    designs.c.source == "import",
                    ~exists().where(remediations.c.design_id == designs.c.id),
                )
            )
        return int(removed)

    def export(self, patterns: Sequence[str] = ()) -> MemoryExport:
        """The named patterns (all when none are named) with their evidence."""
        if not patterns:
            with self._engine.connect() as conn:
                return MemoryExport(patterns=_details(_evidence_rows(conn, None)))
        found = [self.pattern(p) for p in patterns]
        return MemoryExport(patterns=[p for p in found if p is not None])

    def import_(self, document: MemoryExport) -> int:
        """Add the document's remediations this store lacks (by name); how many were added."""
        added = 0
        with self._writing() as conn:
            for pattern in document.patterns:
                for record in pattern.evidence:
                    known = select(remediations.c.id).where(
                        remediations.c.name == record.remediation
                    )
                    if conn.execute(known).first() is not None:
                        continue
                    design = _profile_values(record.figures, None, None) | {
                        "words": sorted(record.words),
                        "platform": record.platform,
                        "recorded_at": _utc(record.decided_at),
                        "source": "import",
                    }
                    inserted = conn.execute(designs.insert().values(design))
                    design_id = _new_id(inserted)
                    conn.execute(
                        remediations.insert().values(
                            name=record.remediation,
                            design_id=design_id,
                            symptom=pattern.symptom,
                            component=pattern.component,
                            action=pattern.action,
                            before=record.before,
                            after=record.after,
                            phase=record.phase,
                            decided_at=_utc(record.decided_at),
                        )
                    )
                    added += 1
        return added

    # -- plumbing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def _migrate(self) -> None:
        with self._writing() as conn:
            if conn.dialect.name == "postgresql":
                # Two operators starting at once: one migrates, the other waits, then finds
                # nothing to do.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            migrate(conn)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_SECONDS})
    else:
        # One shared connection, or every connection would see its own empty database.
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _: object) -> None:
        # pysqlite's own transaction handling begins lazily, on the first write, where a
        # concurrent writer makes it fail at once instead of waiting; we begin ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        if database and database != ":memory:":
            cursor.execute("PRAGMA journal_mode = WAL")  # readers never wait for the writer
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL-safe
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has one
    return int(key[0])


def _insert_for(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back what it was given, without the zone; we always give it UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _embed(embedder: Embedder | None, description: str | None) -> list[float] | None:
    if embedder is None or not description:
        return None
    return embedder.embed([description])[0]


def _profile_values(
    figures: Figures, description: str | None, embedder: Embedder | None
) -> dict[str, Any]:
    point = figures.coordinates()
    return {
        "data_bytes": figures.data_bytes,
        "ingest_rows_per_second": figures.ingest_rows_per_second,
        "retention_days": figures.retention_days,
        "concurrent_queries": figures.concurrent_queries,
        "latency_seconds": figures.latency_seconds,
        "availability": figures.availability,
        **dict(zip(_N_COLUMNS, point, strict=False)),
        "words": sorted(description_words(description)),
        "embedding": _embed(embedder, description),
    }


def _design_at(conn: Connection, platform: str, moment: datetime) -> int:
    """The platform's design at `moment`: the last one recorded by then, else its first."""
    mine = designs.c.platform == platform
    by_then = conn.execute(
        select(func.max(designs.c.id)).where(mine, designs.c.recorded_at <= _utc(moment))
    ).scalar_one_or_none()
    if by_then is not None:
        return int(by_then)
    first = conn.execute(select(func.min(designs.c.id)).where(mine)).scalar_one_or_none()
    if first is None:
        raise UnknownPlatformError(
            f"no design of platform {platform!r} is recorded: record_design first"
        )
    return int(first)


def _past(row: Any) -> PastRemediation:
    high = row.availability == Availability.HIGH
    return PastRemediation(
        platform=row.platform,
        profile=Profile(
            coordinates=(*(getattr(row, c) for c in _N_COLUMNS), 1.0 if high else 0.0),
            words=frozenset(row.words),
            embedding=tuple(row.embedding) if row.embedding else None,
        ),
        symptom=SymptomType(row.symptom),
        component=Component(row.component) if row.component else None,
        action=ActionType(row.action),
        before=row.before,
        after=row.after,
        phase=DecisionPhase(row.phase),
        decided_at=_aware(row.decided_at),
    )


_Key = tuple[SymptomType, Component | None, ActionType]


def _evidence_rows(conn: Connection, only: _Key | None) -> dict[_Key, list[EvidenceRecord]]:
    query = (
        select(remediations, designs)
        .join(designs, remediations.c.design_id == designs.c.id)
        .order_by(remediations.c.decided_at, remediations.c.id)
    )
    if only is not None:
        symptom, component, action = only
        query = query.where(
            remediations.c.symptom == symptom,
            remediations.c.component.is_(None)
            if component is None
            else remediations.c.component == component,
            remediations.c.action == action,
        )
    grouped: dict[_Key, list[EvidenceRecord]] = defaultdict(list)
    for row in conn.execute(query):
        m = row._mapping
        key = (
            SymptomType(m[remediations.c.symptom]),
            Component(m[remediations.c.component]) if m[remediations.c.component] else None,
            ActionType(m[remediations.c.action]),
        )
        grouped[key].append(
            EvidenceRecord(
                remediation=m[remediations.c.name],
                platform=m[designs.c.platform],
                figures=Figures(
                    data_bytes=m[designs.c.data_bytes],
                    ingest_rows_per_second=m[designs.c.ingest_rows_per_second],
                    retention_days=m[designs.c.retention_days],
                    concurrent_queries=m[designs.c.concurrent_queries],
                    latency_seconds=m[designs.c.latency_seconds],
                    availability=Availability(m[designs.c.availability]),
                ),
                words=list(m[designs.c.words]),
                before=m[remediations.c.before],
                after=m[remediations.c.after],
                phase=DecisionPhase(m[remediations.c.phase]),
                decided_at=_aware(m[remediations.c.decided_at]),
            )
        )
    return grouped


def _details(grouped: dict[_Key, list[EvidenceRecord]]) -> list[PatternDetail]:
    details = []
    for (symptom, component, action), records in grouped.items():
        verified = sum(r.phase is DecisionPhase.VERIFIED for r in records)
        failed = sum(r.phase is DecisionPhase.FAILED for r in records)
        details.append(
            PatternDetail(
                id=pattern_id(symptom, component, action),
                symptom=symptom,
                component=component,
                action=action,
                platforms=len({r.platform for r in records}),
                verified=verified,
                failed=failed,
                pending=len(records) - verified - failed,
                factor=_growth(records),
                last_seen=max(r.decided_at for r in records),
                evidence=records,
            )
        )
    return sorted(details, key=lambda d: d.id)


def _growth(records: Iterable[EvidenceRecord]) -> Decimal | None:
    """Per platform, the first size before over the last verified size; their median."""
    by_platform: dict[str, list[EvidenceRecord]] = defaultdict(list)
    for record in records:
        by_platform[record.platform].append(record)
    return median_growth(
        (
            next((r.before for r in rows if r.before), None),
            next((r.after for r in reversed(rows) if r.phase is DecisionPhase.VERIFIED), None),
        )
        for rows in by_platform.values()
    )


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
