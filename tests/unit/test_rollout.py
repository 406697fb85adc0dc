"""Host-by-host rollout of ClickHouse: which pods restart when, decided from the cluster alone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from duet_agents.healer.observations import ClickHouseReplica, Component
from duet_agents.healer.probes import ServerReading
from duet_agents.planner.models import PriceTable
from duet_operator.models.dataplatform import RolloutSpec
from duet_operator.observe import Readiness, clickhouse_shards, readiness, statefulset_progress
from duet_operator.planning import spec_hash
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import Names
from duet_operator.render.platform import build_platform
from duet_operator.rollout import (
    MAX_DELAY_SECONDS,
    MAX_QUEUE_SIZE,
    RESTART_REASON,
    UNREADABLE_GRACE_SECONDS,
    Host,
    Lag,
    Rollout,
    Shard,
    allowed_unavailable,
    decide,
    lag_of,
    needs_reading,
    shard_needs_roll,
    shard_state,
)
from tests.support.platforms import SECRETS, design, platform

OLD, NEW = "web-clickhouse-0-old", "web-clickhouse-0-new"


def shard(
    name: str = "web-clickhouse-0",
    replicas: int = 2,
    *,
    new: tuple[int, ...] = (),
    not_ready: tuple[int, ...] = (),
    deleting: tuple[int, ...] = (),
    absent: tuple[int, ...] = (),
    stale: bool = False,
) -> Shard:
    """A shard whose pods in `new` run the update revision and the others the old one."""
    hosts = tuple(
        Host(
            name=f"{name}-{i}",
            ordinal=i,
            revision=NEW if i in new else OLD,
            ready=i not in not_ready,
            deleting=i in deleting,
        )
        for i in range(replicas)
        if i not in absent
    )
    return Shard(name, replicas, None if stale else NEW, hosts)


CAUGHT_UP = Lag(True)


def test_a_platform_at_rest_has_nothing_to_do_and_nothing_to_say() -> None:
    shards = [shard(f"web-clickhouse-{s}", new=(0, 1)) for s in range(3)]
    decision = decide(shards, 1, None)
    assert (decision.delete, decision.summary, decision.done) == ([], "", True)
    assert (decision.updated, decision.total) == (6, 6)
    assert needs_reading(shards) == []


def test_shards_roll_in_parallel_one_replica_each_highest_ordinal_first() -> None:
    shards = [shard(f"web-clickhouse-{s}") for s in range(3)]
    decision = decide(shards, 1, None)
    assert decision.delete == ["web-clickhouse-0-1", "web-clickhouse-1-1", "web-clickhouse-2-1"]
    assert not decision.done
    assert decision.summary.startswith("rolling out ClickHouse host by host: 0/6 hosts updated")
    assert "restarting web-clickhouse-0-1" in decision.summary


def test_the_next_replica_waits_for_the_restarted_one_to_be_ready() -> None:
    restarting = shard(new=(1,), not_ready=(1,))
    decision = decide([restarting], 1, None)
    assert decision.delete == []
    assert "waiting for web-clickhouse-0-1 to be Ready" in decision.summary
    assert decision.summary.startswith("rolling out ClickHouse host by host: 1/2 hosts updated")


def test_with_probes_off_ready_alone_lets_the_next_replica_go() -> None:
    assert decide([shard(new=(1,))], 1, None).delete == ["web-clickhouse-0-0"]


def test_with_probes_on_the_next_replica_waits_until_the_restarted_one_caught_up() -> None:
    restarted = shard(new=(1,))
    assert needs_reading([restarted]) == ["web-clickhouse-0-1"]
    behind = decide([restarted], 1, {"web-clickhouse-0-1": Lag(False, "40 s behind")})
    assert behind.delete == []
    assert behind.behind
    assert "waiting for web-clickhouse-0-1 (40 s behind) to catch up" in behind.summary
    unread = decide([restarted], 1, {})
    assert unread.delete == []
    assert "web-clickhouse-0-1 (no reading yet)" in unread.summary
    caught_up = decide([restarted], 1, {"web-clickhouse-0-1": CAUGHT_UP})
    assert caught_up.delete == ["web-clickhouse-0-0"]
    assert not caught_up.behind


def test_an_unreachable_host_holds_the_shard_and_says_why() -> None:
    lag = lag_of(
        ServerReading(
            pod="web-clickhouse-0-1", component=Component.CLICKHOUSE, error="no answer within 5 s"
        )
    )
    decision = decide([shard(new=(1,))], 1, {"web-clickhouse-0-1": lag})
    assert decision.delete == []
    assert "cannot read its replication: no answer within 5 s" in decision.summary


def test_the_last_replica_restarted_needs_no_catching_up_wait() -> None:
    # Nothing is left to restart in the shard: its hosts are not read.
    done = shard(new=(0, 1))
    assert needs_reading([done, shard("web-clickhouse-1")]) == []
    assert decide([done], 1, {}).done


@pytest.mark.parametrize(
    ("replicas", "max_unavailable", "allowed"),
    [(1, 1, 1), (1, 4, 1), (2, 1, 1), (2, 2, 1), (3, 2, 2), (3, 5, 2), (5, 3, 3)],
)
def test_never_every_replica_of_a_shard_unless_it_has_one(
    replicas: int, max_unavailable: int, allowed: int
) -> None:
    assert allowed_unavailable(replicas, max_unavailable) == allowed
    decision = decide([shard(replicas=replicas)], max_unavailable, None)
    assert len(decision.delete) == allowed


def test_max_unavailable_two_restarts_two_of_three_and_refills_as_each_catches_up() -> None:
    first = decide([shard(replicas=3)], 2, None)
    assert first.delete == ["web-clickhouse-0-2", "web-clickhouse-0-1"]
    # One is back and caught up, the other not Ready yet: one slot for the last replica.
    lags = {"web-clickhouse-0-2": CAUGHT_UP}
    second = decide([shard(replicas=3, new=(1, 2), not_ready=(1,))], 2, lags)
    assert second.delete == ["web-clickhouse-0-0"]
    # Both back but one behind: still room for one.
    lags = {"web-clickhouse-0-2": CAUGHT_UP, "web-clickhouse-0-1": Lag(False, "x")}
    assert decide([shard(replicas=3, new=(1, 2))], 2, lags).delete == ["web-clickhouse-0-0"]
    # Both behind: none.
    lags = {"web-clickhouse-0-2": Lag(False, "x"), "web-clickhouse-0-1": Lag(False, "y")}
    assert decide([shard(replicas=3, new=(1, 2))], 2, lags).delete == []


def test_a_one_replica_shard_is_restarted_alone() -> None:
    decision = decide([shard(replicas=1)], 1, None)
    assert decision.delete == ["web-clickhouse-0-0"]


def test_pods_being_deleted_or_absent_count_as_down() -> None:
    assert decide([shard(deleting=(1,))], 1, None).delete == []
    assert "restarting web-clickhouse-0-1" in decide([shard(deleting=(1,))], 1, None).summary
    gone = decide([shard(absent=(1,))], 1, None)
    assert gone.delete == []
    assert "restarting web-clickhouse-0-1" in gone.summary
    # A pod of the new revision being deleted (by hand) is not counted as updated.
    assert decide([shard(new=(1,), deleting=(1,))], 1, None).updated == 0


def test_an_old_pod_that_is_not_ready_is_restarted_at_once() -> None:
    # It serves nothing already: restarting it costs no availability, even while another
    # replica of its shard is down.
    decision = decide([shard(replicas=3, new=(2,), not_ready=(0, 2))], 1, None)
    assert decision.delete == ["web-clickhouse-0-0"]


def test_a_shard_whose_statefulset_status_is_behind_waits() -> None:
    stale = shard("web-clickhouse-1", stale=True)
    # Alone, a stale shard is no rollout (its pods' revision cannot be compared yet).
    assert decide([stale], 1, None).done
    decision = decide([shard(), stale], 1, None)
    assert decision.delete == ["web-clickhouse-0-1"]
    assert "waiting for the StatefulSet controller to take web-clickhouse-1's template" in (
        decision.summary
    )


def test_a_whole_rollout_resumes_from_any_point_and_never_takes_a_shard_down() -> None:
    """The decision is a function of the cluster's state alone: run it pass after pass (any
    pass could be a new process), applying its deletes as Kubernetes would."""
    replicas, cap = 3, 2
    state = {s: {i: ("old", True) for i in range(replicas)} for s in range(2)}
    passes = 0
    while passes < 50:
        passes += 1
        shards = [
            Shard(
                f"web-clickhouse-{s}",
                replicas,
                "new",
                tuple(
                    Host(f"web-clickhouse-{s}-{i}", i, rev, ready) for i, (rev, ready) in p.items()
                ),
            )
            for s, p in state.items()
        ]
        for each in shards:
            down = sum(1 for h in each.hosts if not h.ready) + replicas - len(each.hosts)
            assert down <= cap
        decision = decide(shards, cap, None)
        if decision.done:
            break
        # Pods restarted on an earlier pass are Ready now; the deleted ones come back new.
        for pods in state.values():
            for i, (rev, _) in pods.items():
                pods[i] = (rev, True)
        for name in decision.delete:
            number, ordinal = (int(x) for x in name.removeprefix("web-clickhouse-").split("-"))
            state[number][ordinal] = ("new", False)
    assert all(rev == "new" for pods in state.values() for rev, _ in pods.values())
    # Two restarted; waiting for them; the last one; nothing on the old template left.
    assert passes == 4


# -- readings ------------------------------------------------------------------------------------


def reading(**row: Any) -> ServerReading:
    base = {"pod": "web-clickhouse-0-1", "database": "db", "table": "t"}
    return ServerReading(
        pod="web-clickhouse-0-1",
        component=Component.CLICKHOUSE,
        replicas=[ClickHouseReplica.model_validate(base | row)],
    )


def test_caught_up_means_writable_and_within_bounds() -> None:
    empty = ServerReading(pod="p", component=Component.CLICKHOUSE)
    assert lag_of(empty) == Lag(True, "")
    assert lag_of(reading(absoluteDelay=MAX_DELAY_SECONDS, queueSize=MAX_QUEUE_SIZE)).caught_up
    assert lag_of(reading(absoluteDelay=MAX_DELAY_SECONDS + 30)) == Lag(False, "40 s behind")
    assert lag_of(reading(queueSize=MAX_QUEUE_SIZE + 1)).detail == "11 entries queued"
    assert lag_of(reading(isReadonly=True)).detail == "read-only: db.t"
    assert lag_of(reading(isSessionExpired=True)).detail == "its Keeper session expired"


# -- from the API objects ------------------------------------------------------------------------


def sts(name: str, replicas: int = 2, *, generation: int = 2, observed: int = 2,
        update: str = NEW, updated: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "metadata": {"name": name, "generation": generation},
        "spec": {"replicas": replicas, "updateStrategy": {"type": "OnDelete"}},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": updated,
            "currentRevision": OLD,
            "updateRevision": update,
        },
    }


def pod(
    name: str, owner: str, revision: str = OLD, *, ready: bool = True, deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"controller-revision-hash": revision},
        "ownerReferences": [{"kind": "StatefulSet", "name": owner}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {"metadata": meta, "status": {"conditions": [condition]}}


def test_a_shard_is_read_from_its_statefulset_and_the_pods_it_owns() -> None:
    pods = [
        pod("web-clickhouse-0-0", "web-clickhouse-0"),
        pod("web-clickhouse-0-1", "web-clickhouse-0", NEW, ready=False, deleting=True),
        pod("web-clickhouse-0-2", "web-clickhouse-0"),  # past the replicas: being scaled away
        pod("web-clickhouse-1-0", "web-clickhouse-1"),  # another shard's
        pod("web-clickhouse-0-x", "web-clickhouse-0"),  # not an ordinal
    ]
    assert shard_state(sts("web-clickhouse-0"), pods) == Shard(
        "web-clickhouse-0",
        2,
        NEW,
        (
            Host("web-clickhouse-0-0", 0, OLD, ready=True),
            Host("web-clickhouse-0-1", 1, NEW, ready=False, deleting=True),
        ),
    )
    assert shard_state(sts("web-clickhouse-0", observed=1), pods).update_revision is None


def test_only_a_shard_with_pods_behind_its_template_lists_pods() -> None:
    assert shard_needs_roll(sts("a", updated=1))
    assert not shard_needs_roll(sts("a", updated=2))
    # Not yet seen by the controller: its next status brings another pass.
    assert not shard_needs_roll(sts("a", updated=1, observed=1))
    # Being provisioned: every pod made so far runs the template; none to restart.
    provisioning = sts("a", replicas=3, updated=1)
    provisioning["status"]["replicas"] = 1
    assert not shard_needs_roll(provisioning)


def test_only_the_designs_shards_are_rolled() -> None:
    names = Names("web", "ns")
    found = [
        sts("web-clickhouse-1"),
        sts("web-keeper"),
        sts("web-clickhouse-0"),
        sts("web-postgres"),
    ]
    shards = clickhouse_shards(names, design(shards=2), found)
    assert [s["metadata"]["name"] for s in shards] == ["web-clickhouse-0", "web-clickhouse-1"]


def test_the_rollout_speaks_through_readiness_and_one_event_per_host() -> None:
    observed = Readiness(False, True, "replicas not ready: web-clickhouse-0 1/2")
    assert Rollout().readiness(observed) is observed
    rolling = Rollout(False, "rolling out ClickHouse host by host: 1/2", ["web-clickhouse-0-0"])
    assert rolling.readiness(Readiness(True, False, "all ready")) == Readiness(
        False, True, "rolling out ClickHouse host by host: 1/2"
    )
    assert rolling.events() == [
        (
            "Normal",
            RESTART_REASON,
            "deleted pod web-clickhouse-0-0: it restarts on the new template",
        )
    ]


# -- what the rest of the operator must agree with -------------------------------------------------


def test_clickhouse_shards_are_on_delete_and_keeper_and_postgres_keep_rolling_updates() -> None:
    manifests = build_platform(platform(), design(), RenderConfig(), SECRETS)
    strategies: Mapping[str, Any] = {
        m["metadata"]["name"]: m["spec"].get("updateStrategy")
        for m in manifests
        if m["kind"] == "StatefulSet"
    }
    assert strategies == {
        "clicks-clickhouse-0": {"type": "OnDelete"},
        "clicks-clickhouse-1": {"type": "OnDelete"},
        "clicks-keeper": None,
        "clicks-postgres": None,
    }


def test_an_on_delete_shard_whose_pods_all_run_the_template_is_not_rolling() -> None:
    # The controller leaves currentRevision behind under OnDelete, even when every pod is new.
    done = sts("web-clickhouse-0", updated=2)
    assert statefulset_progress(done, 2) == (2, False)
    assert readiness({"web-clickhouse-0": 2}, [done]).ready
    rolling_update = sts("web-keeper", updated=2)
    del rolling_update["spec"]["updateStrategy"]
    assert statefulset_progress(rolling_update, 2) == (2, True)
    assert statefulset_progress(sts("web-clickhouse-0", updated=1), 2) == (2, True)


def test_the_rollout_setting_is_not_part_of_planning() -> None:
    slow = platform()
    fast = platform(rollout={"maxUnavailable": 2})
    assert fast.spec.rollout == RolloutSpec(max_unavailable=2)
    assert slow.spec.rollout.max_unavailable == 1
    assert spec_hash(slow, PriceTable()) == spec_hash(fast, PriceTable())


def test_an_unreachable_host_counts_as_caught_up_a_grace_after_it_is_ready() -> None:
    unreadable = Lag(False, "cannot read its replication: cannot resolve", unreadable=True)
    lags = {"web-clickhouse-0-1": unreadable}
    ready_at = datetime(2026, 1, 1, tzinfo=UTC)
    restarted = Host("web-clickhouse-0-1", 1, NEW, ready=True, ready_since=ready_at)
    old = Host("web-clickhouse-0-0", 0, OLD, ready=True)
    rolling = Shard("web-clickhouse-0", 2, NEW, (old, restarted))

    soon = ready_at + timedelta(seconds=UNREADABLE_GRACE_SECONDS - 1)
    held = decide([rolling], 1, lags, soon)
    assert held.delete == []
    assert "cannot resolve" in held.summary

    later = ready_at + timedelta(seconds=UNREADABLE_GRACE_SECONDS)
    going = decide([rolling], 1, lags, later)
    assert going.delete == ["web-clickhouse-0-0"]
    assert "taken as caught up: web-clickhouse-0-1" in going.summary

    # A host that answered and is behind is never taken as caught up, however long.
    behind = {"web-clickhouse-0-1": Lag(False, "40 s behind")}
    assert decide([rolling], 1, behind, later + timedelta(hours=1)).delete == []
