"""The memory store on SQLite: the issue's scenario end to end, migrations, concurrent
writers, export and import, and what is (not) stored.

The `check_*` functions take a store (or a URL) and are the scenario itself; the PostgreSQL
integration test runs the same ones against a real server.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from duet_agents.healer import ActionType, Component, DecisionPhase, SymptomType
from duet_agents.memory import (
    MemoryExport,
    MemoryStore,
    Outcome,
    RemediationRecord,
    UnknownPlatformError,
    apply_lessons,
    rank_actions,
)
from duet_agents.memory.schema import SCHEMA_VERSION, designs, outcomes, remediations
from duet_agents.planner import capacity
from duet_agents.planner.models import PlanRequest, PlatformDesign
from duet_agents.query.nl.embeddings import Embedder
from duet_agents.units import parse_quantity
from tests.unit.test_memory_similarity import ConceptEmbedder

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FIXED = "shop/clicks"
PATTERN = "OOMKilled/clickhouse/raiseMemory"
SECRET_WORD = "hunter2zebra"


def plan_request(**requirements: Any) -> PlanRequest:
    description = requirements.pop("description", "Clickstream analytics, dashboards")
    return PlanRequest.model_validate(
        {
            "description": description,
            "requirements": {"dataVolume": "2Ti", "ingestRowsPerSecond": 50_000} | requirements,
        }
    )


def memory_of(design: PlatformDesign) -> int:
    return int(parse_quantity(design.clickhouse.resources.memory))


def record_oom_fixed(
    store: MemoryStore,
    platform: str = FIXED,
    request: PlanRequest | None = None,
    embedder: Embedder | None = None,
) -> PlatformDesign:
    """A platform designed, OOM-killed, and healed by raising memory 1.5x, verified."""
    request = request or plan_request()
    design = capacity.plan(request)
    store.record_design(platform, request, design, recorded_at=NOW, embedder=embedder)
    store.record_outcome(platform, Outcome(observed_at=NOW, time_to_ready_seconds=84))
    store.record_outcome(
        platform,
        Outcome(
            observed_at=NOW + timedelta(hours=2),
            symptom=SymptomType.OOM_KILLED,
            component=Component.CLICKHOUSE,
            oom_kills=3,
        ),
    )
    before = design.clickhouse.resources.memory
    after = f"{memory_of(design) * 3 // 2 // 2**30}Gi"
    name = f"{platform.replace('/', '-')}-oomkilled-1"
    for phase in (DecisionPhase.PENDING, DecisionPhase.APPLIED, DecisionPhase.VERIFIED):
        store.record_remediation(
            platform,
            RemediationRecord(
                name=name,
                symptom=SymptomType.OOM_KILLED,
                component=Component.CLICKHOUSE,
                action=ActionType.RAISE_MEMORY,
                before=before,
                after=after,
                phase=phase,
                decided_at=NOW + timedelta(hours=2),
            ),
        )
    return design


# -- the scenario, for both stores ---------------------------------------------------------------


def check_similar_platform_gets_more_memory(store: MemoryStore) -> None:
    record_oom_fixed(store)
    similar = plan_request(dataVolume="2500Gi", ingestRowsPerSecond=60_000)
    plain = capacity.plan(similar)
    lessons = store.lessons_for(similar)
    designed = apply_lessons(plain, similar, lessons)
    assert [lesson.pattern for lesson in lessons] == [PATTERN]
    assert memory_of(designed) == memory_of(plain) * 3 // 2
    why = [line for line in designed.rationale if PATTERN in line]
    assert len(why) == 1
    assert why[0].startswith("memory per replica: ")
    assert FIXED in why[0]
    assert "OOM-killed" in why[0]
    assert designed.estimated_monthly_cost_usd > plain.estimated_monthly_cost_usd


def check_dissimilar_platform_is_not_changed(store: MemoryStore) -> None:
    record_oom_fixed(store)
    for dissimilar in (
        plan_request(dataVolume="200Ti", ingestRowsPerSecond=2_000_000),
        plan_request(availability="high"),
        plan_request(dataVolume="50Gi", ingestRowsPerSecond=500, concurrentQueries=200),
    ):
        plain = capacity.plan(dissimilar)
        assert store.lessons_for(dissimilar) == []
        assert apply_lessons(plain, dissimilar, []) == plain


def check_forgetting_restores_the_plain_design(store: MemoryStore) -> None:
    record_oom_fixed(store)
    similar = plan_request(dataVolume="2500Gi")
    plain = capacity.plan(similar)
    assert apply_lessons(plain, similar, store.lessons_for(similar)) != plain
    assert store.forget(PATTERN) == 1
    assert store.lessons_for(similar) == []
    assert apply_lessons(plain, similar, store.lessons_for(similar)) == plain
    assert store.pattern(PATTERN) is None
    assert store.forget(PATTERN) == 0


def check_unsettled_and_failed_remedies_teach_nothing(store: MemoryStore) -> None:
    request = plan_request()
    store.record_design(FIXED, request, capacity.plan(request), recorded_at=NOW)
    for name, phase in (("a-1", DecisionPhase.APPLIED), ("a-2", DecisionPhase.FAILED)):
        store.record_remediation(
            FIXED,
            RemediationRecord(
                name=name,
                symptom=SymptomType.OOM_KILLED,
                component=Component.CLICKHOUSE,
                action=ActionType.RAISE_MEMORY,
                before="16Gi",
                after="24Gi",
                phase=phase,
                decided_at=NOW,
            ),
        )
    assert store.lessons_for(request) == []
    stats = store.action_stats(SymptomType.OOM_KILLED, Component.CLICKHOUSE)
    ranked = rank_actions(
        SymptomType.OOM_KILLED, [ActionType.RAISE_MEMORY, ActionType.SCALE_OUT], stats
    )
    assert [r.action for r in ranked] == [ActionType.SCALE_OUT, ActionType.RAISE_MEMORY]


def check_concurrent_writers_lose_nothing(open_store: Callable[[], MemoryStore]) -> None:
    """Writers with connections of their own (as separate operator processes would have)
    and threads sharing one store, all at once."""
    writers, each = 6, 15
    shared = open_store()
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(index: int) -> None:
        store = shared if index % 2 else open_store()
        try:
            start.wait()
            for i in range(each):
                platform = f"load/p{index}-{i}"
                request = plan_request(ingestRowsPerSecond=1000 * (index + 1) + i)
                store.record_design(platform, request, capacity.plan(request), recorded_at=NOW)
                store.record_outcome(platform, Outcome(observed_at=NOW, oom_kills=1))
                store.record_remediation(
                    platform,
                    RemediationRecord(
                        name=f"p{index}-{i}",
                        symptom=SymptomType.OOM_KILLED,
                        component=Component.CLICKHOUSE,
                        action=ActionType.RAISE_MEMORY,
                        before="16Gi",
                        after="24Gi",
                        phase=DecisionPhase.VERIFIED,
                        decided_at=NOW,
                    ),
                )
        except BaseException as e:
            errors.append(e)
        finally:
            if store is not shared:
                store.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert row_counts(shared) == (writers * each,) * 3
    [pattern] = shared.patterns()
    assert (pattern.platforms, pattern.verified) == (writers * each, writers * each)
    shared.close()


def check_export_import_teaches_the_same(store: MemoryStore, empty: MemoryStore) -> None:
    record_oom_fixed(store)
    similar = plan_request(dataVolume="2500Gi")
    document = MemoryExport.from_yaml(store.export().to_yaml())
    assert empty.import_(document) == 1
    assert empty.import_(document) == 0  # keyed by the Remediation's name
    assert empty.lessons_for(similar) == store.lessons_for(similar)
    assert [p.id for p in empty.patterns()] == [PATTERN]
    assert empty.forget(PATTERN) == 1
    assert row_counts(empty) == (0, 0, 0)  # the imported platform went with it


def row_counts(store: MemoryStore) -> tuple[int, int, int]:
    with store._engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (designs, outcomes, remediations)
        )


# -- SQLite --------------------------------------------------------------------------------------


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'memory.db'}"


@pytest.fixture
def store(url: str) -> Iterator[MemoryStore]:
    with MemoryStore.open(url) as opened:
        yield opened


def test_a_similar_platform_is_designed_with_more_memory_and_says_why(store: MemoryStore) -> None:
    check_similar_platform_gets_more_memory(store)


def test_a_dissimilar_platform_is_not(store: MemoryStore) -> None:
    check_dissimilar_platform_is_not_changed(store)


def test_forgetting_the_lesson_restores_the_plain_design(store: MemoryStore) -> None:
    check_forgetting_restores_the_plain_design(store)


def test_unsettled_and_failed_remedies_teach_nothing(store: MemoryStore) -> None:
    check_unsettled_and_failed_remedies_teach_nothing(store)


def test_concurrent_writers_lose_nothing(url: str) -> None:
    check_concurrent_writers_lose_nothing(lambda: MemoryStore.open(url))


def test_export_and_import_teach_the_same_lessons(store: MemoryStore, tmp_path: Path) -> None:
    with MemoryStore.open(f"sqlite:///{tmp_path / 'other.db'}") as empty:
        check_export_import_teaches_the_same(store, empty)


def test_descriptions_are_compared_by_embedding_when_the_model_is_there(store: MemoryStore) -> None:
    """Twice every figure is too far on requirements alone; a description that means the
    same brings it back, by words without the model and by meaning with it."""
    embedder = ConceptEmbedder()
    record_oom_fixed(
        store, request=plan_request(description="clickstream dashboards"), embedder=embedder
    )
    doubled = {
        "dataVolume": "4Ti",
        "ingestRowsPerSecond": 100_000,
        "retentionDays": 180,
        "concurrentQueries": 20,
        "queryLatencyP95": "2s",
    }
    assert store.lessons_for(plan_request(**doubled, description=None)) == []
    same_words = plan_request(**doubled, description="Clickstream dashboards")
    assert [lesson.pattern for lesson in store.lessons_for(same_words)] == [PATTERN]
    same_meaning = plan_request(**doubled, description="web charts")
    assert store.lessons_for(same_meaning) == []
    [lesson] = store.lessons_for(same_meaning, embedder=embedder)
    assert lesson.evidence[0].platform == FIXED


def test_open_migrates_once_and_refuses_a_newer_schema(url: str) -> None:
    with MemoryStore.open(url) as store:
        record_oom_fixed(store)
    with MemoryStore.open(url) as again:  # already migrated: nothing lost
        assert [p.id for p in again.patterns()] == [PATTERN]
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        conn.execute("UPDATE schema_version SET version = version + 1")
    with pytest.raises(RuntimeError, match="newer than this Duet"):
        MemoryStore.open(url)


def test_an_outcome_needs_the_platforms_design(store: MemoryStore) -> None:
    with pytest.raises(UnknownPlatformError, match="record_design first"):
        store.record_outcome("shop/unknown", Outcome(observed_at=NOW))


def test_a_remediation_stays_with_the_design_it_was_decided_under(store: MemoryStore) -> None:
    """A later spec change (a new design) does not move what the old design taught."""
    first = record_oom_fixed(store)
    bigger = plan_request(dataVolume="40Ti")
    store.record_design(FIXED, bigger, capacity.plan(bigger), recorded_at=NOW + timedelta(days=1))
    store.record_remediation(
        FIXED,
        RemediationRecord(
            name="shop-clicks-oomkilled-1",
            symptom=SymptomType.OOM_KILLED,
            component=Component.CLICKHOUSE,
            action=ActionType.RAISE_MEMORY,
            phase=DecisionPhase.VERIFIED,
            decided_at=NOW + timedelta(hours=2),
        ),
    )
    assert [lesson.pattern for lesson in store.lessons_for(plan_request())] == [PATTERN]
    assert store.lessons_for(bigger) == []
    [evidence] = store.lessons_for(plan_request())[0].evidence
    assert evidence.before == first.clickhouse.resources.memory  # kept: the update had none
    assert evidence.verified == 1


def test_no_description_text_is_stored(url: str) -> None:
    with MemoryStore.open(url) as store:
        request = plan_request(description=f"Clickstream; the admin password is {SECRET_WORD}")
        store.record_design(FIXED, request, capacity.plan(request), recorded_at=NOW)
    path = Path(url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.is_file())
    assert SECRET_WORD.encode() not in stored
    assert b"Clickstream" not in stored


def test_the_password_of_a_url_is_never_shown(tmp_path: Path) -> None:
    store = MemoryStore.open(f"sqlite:///{tmp_path / 'm.db'}")
    assert "m.db" in repr(store)
    store.close()
    with pytest.raises(ValueError, match="mysql is not supported") as refused:
        MemoryStore.open("mysql://root:s3cretpw@db/memory")
    assert "s3cretpw" not in str(refused.value)
