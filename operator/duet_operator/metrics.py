"""Prometheus metrics of the operator, named like controller-runtime's where they mean the same."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from duet_agents.llm.metrics import LLMMetrics

if TYPE_CHECKING:
    from duet_operator.observe import Replicas

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILE_TOTAL = Counter(
    "duet_reconcile_total",
    "Reconciles by kind and result (success, error, requeue).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_TIME = Histogram(
    "duet_reconcile_time_seconds",
    "Time spent in one reconcile, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RECONCILE_QUEUE = Histogram(
    "duet_reconcile_queue_seconds",
    "Time a reconcile waited for a worker slot (like workqueue_queue_duration_seconds).",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
PLATFORMS = Gauge(
    "duet_platforms",
    "DataPlatforms by phase, as last reported.",
    ["namespace", "name", "phase"],
    registry=REGISTRY,
)
REPLICAS = Gauge(
    "duet_platform_replicas",
    "Replicas of a platform's components (clickhouse, keeper, postgres): desired by its design"
    " and ready, as last observed.",
    ["namespace", "name", "component", "state"],
    registry=REGISTRY,
)
TIME_TO_READY = Histogram(
    "duet_platform_time_to_ready_seconds",
    "From a platform's creation to its first Ready.",
    buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)


@contextmanager
def reconcile_timer(kind: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except Exception:
        RECONCILE_TOTAL.labels(kind, "error").inc()
        raise
    else:
        RECONCILE_TOTAL.labels(kind, "success").inc()
    finally:
        RECONCILE_TIME.labels(kind).observe(time.perf_counter() - started)


def set_phase(namespace: str, name: str, phase: str | None) -> None:
    """One series per platform: the one for its current phase is 1, stale phases removed."""
    (family,) = PLATFORMS.collect()
    for sample in list(family.samples):
        labels = sample.labels
        if labels["namespace"] == namespace and labels["name"] == name and labels["phase"] != phase:
            PLATFORMS.remove(namespace, name, labels["phase"])
    if phase:
        PLATFORMS.labels(namespace, name, phase).set(1)


def set_replicas(namespace: str, name: str, replicas: Mapping[str, Replicas]) -> None:
    """Desired and ready replicas per component; components the design no longer has (a
    PostgreSQL turned off) are removed rather than left at their last value."""
    (family,) = REPLICAS.collect()
    for sample in list(family.samples):
        labels = sample.labels
        if (labels["namespace"], labels["name"]) == (namespace, name) and (
            labels["component"] not in replicas
        ):
            REPLICAS.remove(namespace, name, labels["component"], labels["state"])
    for component, count in replicas.items():
        REPLICAS.labels(namespace, name, component, "desired").set(count.desired)
        REPLICAS.labels(namespace, name, component, "ready").set(count.ready)


def forget_platform(namespace: str, name: str) -> None:
    set_phase(namespace, name, None)
    set_replicas(namespace, name, {})
    platform = f"{namespace}/{name}"
    set_symptoms(platform, {})
    (family,) = REMEDIATIONS_TOTAL.collect()
    for sample in list(family.samples):
        if sample.labels.get("platform") == platform and sample.name.endswith("_total"):
            labels = sample.labels
            REMEDIATIONS_TOTAL.remove(platform, labels["action"], labels["mode"], labels["result"])


# -- the healer ------------------------------------------------------------------------------------

REMEDIATIONS_TOTAL = Counter(
    "duet_remediations_total",
    "Remediation steps by platform (namespace/name), action, autonomy mode and result"
    " (recorded, pending, applied, verified, failed, expired).",
    ["platform", "action", "mode", "result"],
    registry=REGISTRY,
)
SYMPTOMS_ACTIVE = Gauge(
    "duet_symptoms_active",
    "Symptoms the healer sees now, by platform (namespace/name) and symptom type.",
    ["platform", "symptom"],
    registry=REGISTRY,
)
MTTR = Histogram(
    "duet_mttr_seconds",
    "From a symptom's detection (its Remediation created) to the remedy verified.",
    buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200),
    registry=REGISTRY,
)


def set_symptoms(platform: str, counts: dict[str, int]) -> None:
    """The platform's active symptoms by type; types no longer seen are removed, not left at
    their last value."""
    (family,) = SYMPTOMS_ACTIVE.collect()
    for sample in list(family.samples):
        labels = sample.labels
        if labels["platform"] == platform and labels["symptom"] not in counts:
            SYMPTOMS_ACTIVE.remove(platform, labels["symptom"])
    for symptom, count in counts.items():
        SYMPTOMS_ACTIVE.labels(platform, symptom).set(count)


# -- model calls (duet_operator.llm_metrics; the names are duet_agents.llm.metrics') -----------

LLM = LLMMetrics(REGISTRY)
LLM_REQUESTS = LLM.requests
LLM_TOKENS = LLM.tokens
LLM_COST = LLM.cost
LLM_DURATION = LLM.duration
PLANNER_FALLBACKS = Counter(
    "duet_planner_fallbacks_total",
    "Plans where the built-in design was used instead of a model's, by reason.",
    ["reason"],
    registry=REGISTRY,
)
