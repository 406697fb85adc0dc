"""The healer's and the platform's gauges: set per platform, cleared when gone or deleted."""

from __future__ import annotations

from duet_agents.healer.probes import WalSpool
from duet_operator import metrics
from duet_operator.observe import Replicas


def active(platform: str) -> dict[str, float]:
    (family,) = metrics.SYMPTOMS_ACTIVE.collect()
    samples = [s for s in family.samples if s.labels["platform"] == platform]
    return {s.labels["symptom"]: s.value for s in samples}


def test_symptoms_are_counted_by_type_and_removed_when_gone() -> None:
    metrics.set_symptoms("ns/web", {"CrashLoop": 2, "OOMKilled": 1})
    metrics.set_symptoms("ns/other", {"CrashLoop": 1})
    assert active("ns/web") == {"CrashLoop": 2, "OOMKilled": 1}

    metrics.set_symptoms("ns/web", {"OOMKilled": 1})
    assert active("ns/web") == {"OOMKilled": 1}, "a type no longer seen is removed, not left at 2"
    metrics.set_symptoms("ns/web", {})
    assert active("ns/web") == {}
    assert active("ns/other") == {"CrashLoop": 1}, "other platforms keep theirs"
    metrics.set_symptoms("ns/other", {})


def replicas(namespace: str, name: str) -> dict[tuple[str, str], float]:
    (family,) = metrics.REPLICAS.collect()
    return {
        (s.labels["component"], s.labels["state"]): s.value
        for s in family.samples
        if (s.labels["namespace"], s.labels["name"]) == (namespace, name)
    }


def test_replicas_per_component_follow_the_design_and_go_with_the_platform() -> None:
    metrics.set_replicas("ns", "web", {"clickhouse": Replicas(4, 3), "postgres": Replicas(2, 2)})
    metrics.set_replicas("ns", "other", {"keeper": Replicas(3, 3)})
    assert replicas("ns", "web") == {
        ("clickhouse", "desired"): 4,
        ("clickhouse", "ready"): 3,
        ("postgres", "desired"): 2,
        ("postgres", "ready"): 2,
    }
    # PostgreSQL turned off in the design: its series go rather than stay at their last value.
    metrics.set_replicas("ns", "web", {"clickhouse": Replicas(4, 4)})
    assert replicas("ns", "web") == {("clickhouse", "desired"): 4, ("clickhouse", "ready"): 4}

    metrics.REMEDIATIONS_TOTAL.labels("ns/web", "restartPod", "auto", "verified").inc()
    metrics.REMEDIATIONS_TOTAL.labels("ns/other", "restartPod", "auto", "verified").inc()
    metrics.set_symptoms("ns/web", {"CrashLoop": 1})
    metrics.forget_platform("ns", "web")
    assert replicas("ns", "web") == {}
    assert active("ns/web") == {}
    (family,) = metrics.REMEDIATIONS_TOTAL.collect()
    platforms = {s.labels["platform"] for s in family.samples}
    assert "ns/web" not in platforms, "a deleted platform's counters go with it"
    assert "ns/other" in platforms
    assert replicas("ns", "other") == {("keeper", "desired"): 3, ("keeper", "ready"): 3}
    metrics.forget_platform("ns", "other")


def spool(namespace: str, name: str) -> dict[tuple[str, str], float]:
    found = {}
    for gauge, what in ((metrics.WAL_SPOOL_FILES, "files"), (metrics.WAL_SPOOL_OLDEST, "oldest")):
        (family,) = gauge.collect()
        for s in family.samples:
            if (s.labels["namespace"], s.labels["name"]) == (namespace, name):
                found[(s.labels["pod"], what)] = s.value
    return found


def test_the_wal_spool_follows_the_primary_and_goes_with_the_platform() -> None:
    metrics.set_wal_spool(
        "ns", "web", [WalSpool(pod="web-postgres-0", files=3, oldest_seconds=720)]
    )
    metrics.set_wal_spool("ns", "other", [WalSpool(pod="other-postgres-0", files=0)])
    assert spool("ns", "web") == {("web-postgres-0", "files"): 3, ("web-postgres-0", "oldest"): 720}
    # Nothing waiting reads 0 s, which no alert threshold mistakes for a backlog.
    assert spool("ns", "other") == {
        ("other-postgres-0", "files"): 0,
        ("other-postgres-0", "oldest"): 0,
    }
    # A failover: the new primary's spool, the former one's series gone, not stuck at 720.
    metrics.set_wal_spool("ns", "web", [WalSpool(pod="web-postgres-1", files=1, oldest_seconds=5)])
    assert spool("ns", "web") == {("web-postgres-1", "files"): 1, ("web-postgres-1", "oldest"): 5}
    metrics.forget_platform("ns", "web")
    assert spool("ns", "web") == {}
    assert spool("ns", "other") != {}, "other platforms keep theirs"
    metrics.set_wal_spool("ns", "other", [])
    assert spool("ns", "other") == {}
