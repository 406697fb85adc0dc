"""The memory store on a real PostgreSQL server: the same scenario as on SQLite
(tests/unit/test_memory_store.py), each test in a database of its own."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from duet_agents.memory import MemoryStore
from tests.integration.postgres_fixtures import postgres_server
from tests.support.postgres import PostgresServer
from tests.unit.test_memory_store import (
    check_concurrent_writers_lose_nothing,
    check_dissimilar_platform_is_not_changed,
    check_export_import_teaches_the_same,
    check_forgetting_restores_the_plain_design,
    check_similar_platform_gets_more_memory,
    check_unsettled_and_failed_remedies_teach_nothing,
    record_oom_fixed,
)

# The session's server fixture, imported so pytest finds it in this module.
__all__ = ["postgres_server"]


@pytest.fixture
def url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"memory_{uuid.uuid4().hex[:10]}"
    with postgres_server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url(db=name)
    with postgres_server.admin() as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


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


def test_lessons_move_between_postgres_and_sqlite(store: MemoryStore, tmp_path: Path) -> None:
    with MemoryStore.open(f"sqlite:///{tmp_path / 'memory.db'}") as sqlite_store:
        check_export_import_teaches_the_same(store, sqlite_store)


def test_two_stores_opening_one_new_database_at_once_migrate_it_once(url: str) -> None:
    """Operators starting together: the advisory lock lets one migrate, the other waits."""
    opened: list[MemoryStore] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            opened.append(MemoryStore.open(url))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    record_oom_fixed(opened[0])
    assert [p.id for p in opened[-1].patterns()] == ["OOMKilled/clickhouse/raiseMemory"]
    for store in opened:
        store.close()
