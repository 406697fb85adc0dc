"""The healer's gauge of active symptoms: set per platform and type, and cleared when gone."""

from __future__ import annotations

from duet_operator import metrics


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
