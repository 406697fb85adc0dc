"""The SchemaInSync condition from what the hosts said, and Ready waiting for it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from clickhouse_connect.driver.client import Client

from duet_agents.clickhouse.schema import DatabaseInfo, HostSchema, TableInfo
from duet_agents.planner.models import PriceTable
from duet_operator.observe import Readiness
from duet_operator.planning import plan_platform
from duet_operator.reconcile import next_status
from duet_operator.render.naming import Names
from duet_operator.schema_sync import (
    Host,
    HostReading,
    SchemaState,
    reference,
    shard_signature,
    unreadable,
    verdict,
)
from duet_operator.status import ConditionType, Reason, find
from tests.support.platforms import design, platform

NAMES = Names("clicks", "analytics")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NO_CLIENT = cast(Client, None)


def schema(*tables: str) -> HostSchema:
    return HostSchema(
        databases=[DatabaseInfo(name="sales", engine="Atomic")],
        tables=[
            TableInfo(
                database="sales",
                name=t,
                engine="MergeTree",
                create_table_query=f"CREATE TABLE sales.{t} (id UInt64) ENGINE = Log",
            )
            for t in tables
        ],
    )


def test_the_reference_is_the_host_with_the_most_tables_never_an_empty_newcomer() -> None:
    hosts = [
        Host("clicks-clickhouse-0-0", schema(), NO_CLIENT),  # replaced: its volume was lost
        Host("clicks-clickhouse-0-1", schema("events", "orders"), NO_CLIENT),
        Host("clicks-clickhouse-1-0", schema("events", "orders"), NO_CLIENT),
    ]
    assert reference(hosts).pod == "clicks-clickhouse-0-1", "the first by name among equals"


def test_the_verdict_says_what_was_given_and_what_is_still_lacking() -> None:
    source = Host("clicks-clickhouse-0-0", schema("events", "orders"), NO_CLIENT)
    in_step = verdict(4, source, {}, {})
    assert (in_step.in_sync, in_step.reason) == (True, Reason.SCHEMA_IN_STEP)
    assert in_step.message == "all 4 hosts have the same 2 tables"

    replayed = verdict(4, source, {"clicks-clickhouse-1-0": 3, "clicks-clickhouse-1-1": 3}, {})
    assert (replayed.in_sync, replayed.reason) == (True, Reason.SCHEMA_REPLAYED)
    assert "clicks-clickhouse-1-0, clicks-clickhouse-1-1" in replayed.message
    assert "(6 statements)" in replayed.message

    still = {"clicks-clickhouse-1-0": "lacks tables: sales.orders"}
    notes = ["sales.secret_dict: its definition hides a secret"]
    lacking = verdict(4, source, {"clicks-clickhouse-1-0": 3}, still, notes)
    assert (lacking.in_sync, lacking.reason, lacking.recheck) == (
        False, Reason.SCHEMA_NOT_IN_STEP, True,
    )  # fmt: skip
    assert "compared with clicks-clickhouse-0-0" in lacking.message
    assert "clicks-clickhouse-1-0 lacks tables: sales.orders" in lacking.message
    assert "not replayed: sales.secret_dict" in lacking.message


def test_an_unreadable_host_makes_the_state_unknown_naming_it() -> None:
    readings = [
        HostReading("clicks-clickhouse-0-0", schema=schema("events")),
        HostReading("clicks-clickhouse-0-1", error="connection refused"),
    ]
    state = unreadable(readings)
    assert (state.in_sync, state.reason) == (None, Reason.SCHEMA_UNREADABLE)
    assert state.message == "cannot read the schema of clicks-clickhouse-0-1: connection refused"


def sts(name: str, replicas: int, ready: int, revision: str = "r1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": ready, "updateRevision": revision,
                   "currentRevision": revision, "observedGeneration": 1},
    }  # fmt: skip


def test_the_signature_follows_the_shards_and_nothing_else() -> None:
    d = design(shards=2, replicas=2)
    base = [sts("clicks-clickhouse-0", 2, 2), sts("clicks-clickhouse-1", 2, 2)]
    keeper = sts("clicks-keeper", 3, 3)
    signature = shard_signature(NAMES, d, base)
    assert shard_signature(NAMES, d, [*base, keeper]) == signature
    assert shard_signature(NAMES, d, [sts("clicks-clickhouse-0", 3, 3), base[1]]) != signature
    assert shard_signature(NAMES, d, [sts("clicks-clickhouse-0", 2, 2, "r2"), base[1]]) != signature


PRICES = PriceTable()
READY = Readiness(True, False, "all 7 replicas ready")


def status_with(state: SchemaState | None, before: Any = None) -> Any:
    p = platform()
    if before is not None:
        p = p.model_copy(update={"status": before})
    planned = plan_platform(p, PRICES)
    return next_status(p, planned, READY, None, NAMES, now=T0, schema=state)


def test_ready_waits_for_a_host_that_lacks_tables_but_not_for_an_unknown() -> None:
    lacking = SchemaState(False, Reason.SCHEMA_NOT_IN_STEP, "compared with ...: lacks tables")
    status = status_with(lacking)
    ready = find(status.conditions, ConditionType.READY)
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", Reason.SCHEMA_NOT_IN_STEP)
    schema_condition = find(status.conditions, ConditionType.SCHEMA_IN_SYNC)
    assert schema_condition is not None
    assert schema_condition.status == "False"

    unknown = status_with(SchemaState(None, Reason.SCHEMA_UNREADABLE, "cannot read ..."))
    assert find(unknown.conditions, ConditionType.READY).status == "True"  # type: ignore[union-attr]
    assert find(unknown.conditions, ConditionType.SCHEMA_IN_SYNC).status == "Unknown"  # type: ignore[union-attr]

    # Nothing new from the check: the last finding stands, and so does its hold on Ready.
    kept = status_with(None, before=status)
    assert find(kept.conditions, ConditionType.SCHEMA_IN_SYNC).status == "False"  # type: ignore[union-attr]
    assert find(kept.conditions, ConditionType.READY).status == "False"  # type: ignore[union-attr]
    in_step = status_with(SchemaState(True, Reason.SCHEMA_REPLAYED, "gave ..."), before=status)
    assert find(in_step.conditions, ConditionType.READY).status == "True"  # type: ignore[union-attr]
