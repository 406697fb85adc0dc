"""A real PostgreSQL server for the whole test session (tests/support/postgres.py).

Import the fixture into a test module: `from tests.integration.postgres_fixtures import
postgres_server`. It skips, saying why, only when no PostgreSQL server binaries exist.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import DEBIAN_ROOT, PostgresServer, find_bin_dir, running_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(f"no PostgreSQL server binaries under {DEBIAN_ROOT}/<version>/bin")
    with running_postgres(bin_dir) as server:
        yield server
