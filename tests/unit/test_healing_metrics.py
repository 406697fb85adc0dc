"""The healer's and the platform's gauges: set per platform, cleared when gone or deleted."""

from __future__ import annotations

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
