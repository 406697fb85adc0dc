"""The PostgreSQL pods' entrypoint against real servers: a primary and a standby as the
StatefulSet makes them, the primary lost with writes the standby never got, the standby
promoted by moving the primary (what `status.postgresPrimary` does to the pod template), and
the former primary brought back: rewound onto the new history, following it, its stray
write gone, and nothing of it deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import find_bin_dir
from tests.support.postgres_pods import PostgresPods, postgres_pods
from tests.support.wait import wait_until

BIN_DIR = find_bin_dir()
pytestmark = pytest.mark.skipif(BIN_DIR is None, reason="PostgreSQL server binaries not found")


@pytest.fixture
def pods() -> Iterator[PostgresPods]:
    assert BIN_DIR is not None
    with postgres_pods(BIN_DIR, 2) as pods:
        yield pods


def rows(pods: PostgresPods, ordinal: int) -> set[str]:
    with pods.connect(ordinal) as conn:
        return {str(r[0]) for r in conn.execute("SELECT note FROM notes").fetchall()}


def write(pods: PostgresPods, ordinal: int, note: str) -> None:
    with pods.connect(ordinal) as conn:
        conn.execute("INSERT INTO notes VALUES (%s)", (note,))


def streams_to(pods: PostgresPods, primary: int, standby: int) -> bool:
    with pods.connect(primary) as conn:
        row = conn.execute(
            "SELECT state FROM pg_stat_replication WHERE application_name = %s",
            (pods.pods[standby].name,),
        ).fetchone()
    return row is not None and row[0] == "streaming"


def test_a_promoted_standby_takes_over_and_the_old_primary_follows_it(
    pods: PostgresPods,
) -> None:
    # The platform as first provisioned: pod 0 initialises the primary, pod 1 clones it.
    pods.start(0, primary=0)
    pods.wait_accepting(0)
    with pods.connect(0) as conn:
        conn.execute("CREATE TABLE notes (note text)")
        roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    assert {"replicator", "readonly"} <= roles, "the init script ran on first start"
    write(pods, 0, "before")
    pods.start(1, primary=0)
    pods.wait_accepting(1)
    wait_until(lambda: streams_to(pods, 0, 1), timeout=30, what="pod 1 to stream from pod 0")
    wait_until(lambda: "before" in rows(pods, 1), timeout=30, what="the row on the standby")
    assert pods.in_recovery(1)

    # The standby goes away for a moment, the primary takes one more write, and is lost.
    pods.stop(1)
    write(pods, 0, "never replicated")
    pods.stop(0, crash=True)

    # promotePostgresReplica: the primary is now pod 1, and its pod restarts as such.
    # It comes up as the standby it was, then promotes itself.
    pods.start(1, primary=1)
    pods.wait_accepting(1)
    wait_until(lambda: not pods.in_recovery(1), timeout=30, what="pod 1 to be promoted")
    assert rows(pods, 1) == {"before"}
    write(pods, 1, "after")

    # The former primary comes back under the new pod template: its history forked at the
    # promotion, so it is rewound onto pod 1's, and follows it.
    pods.start(0, primary=1)
    pods.wait_accepting(0, timeout=90)
    assert pods.in_recovery(0), "the former primary is a standby now"
    wait_until(lambda: streams_to(pods, 1, 0), timeout=30, what="pod 0 to stream from pod 1")
    wait_until(lambda: "after" in rows(pods, 0), timeout=30, what="pod 1's write on pod 0")
    assert rows(pods, 0) == {"before", "after"}, "the write pod 1 never had is gone"
    assert "rewinding onto the primary" in pods.log_of(0)
    # Rewound in place: nothing set aside, nothing deleted.
    assert not list(Path(pods.pods[0].base).glob("pgdata.diverged.*"))


def test_an_empty_instance_is_never_made_the_primary(pods: PostgresPods) -> None:
    # Pod 1 named primary with no data of its own (its volume replaced, say): initialising
    # it would put an empty database in place of the platform's.
    pod = pods.start(1, primary=1)
    assert pod.process is not None
    assert pod.process.wait(timeout=30) == 1
    assert "has no data: not initialising an empty one" in pods.log_of(1)
    assert not (pod.data / "PG_VERSION").exists()
