"""Prometheus metrics of the operator, named like controller-runtime's where they mean the same."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from duet_agents.llm.metrics import LLMMetrics

if TYPE_CHECKING:
    from duet_agents.healer.probes import WalSpool
    from duet_operator.observe import Replicas

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILE_TOTAL = Counter(
    "duet_reconcile_total",
    "Reconciles by kind and result (success, error, requeue).",
    ["kind", "result"],
    registry=REGISTRY,
)
# Fine around a quarter of a second, the handler time to hold to: with only 0.1 and 0.25,
# histogram_quantile() puts a p95 near 0.24 for anything in between.
UP_TO_HALF_A_SECOND = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
RECONCILE_TIME = Histogram(
    "duet_reconcile_time_seconds",
    "Time spent in one reconcile, by kind.",
    ["kind"],
    buckets=(*UP_TO_HALF_A_SECOND, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RECONCILE_QUEUE = Histogram(
    "duet_reconcile_queue_seconds",
    "Time a reconcile waited for a worker slot (like workqueue_queue_duration_seconds).",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
APPLIED_OBJECTS = Counter(
    "duet_applied_objects_total",
    "Objects sent to the API server by server-side apply, by kind: what differed from what"
    " was stored (a healthy platform's resync sends none).",
    ["kind"],
    registry=REGISTRY,
)
PHASE_LABELS = ("namespace", "name", "phase")
REPLICA_LABELS = ("namespace", "name", "component", "state")
PLATFORMS = Gauge(
    "duet_platforms",
    "DataPlatforms by phase, as last reported.",
    PHASE_LABELS,
    registry=REGISTRY,
)
REPLICAS = Gauge(
    "duet_platform_replicas",
    "Replicas of a platform's components (clickhouse, keeper, postgres): desired by its design"
    " and ready, as last observed.",
    REPLICA_LABELS,
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


def remove_series(
    metric: Gauge | Counter,
    labelnames: tuple[str, ...],
    where: Callable[[Mapping[str, str]], bool],
) -> None:
    """Remove the series whose labels `where` accepts. It reads every series of the metric
    (`collect()`), so it is for rare removals; refreshes go through `_replace_series`."""
    (family,) = metric.collect()
    # A counter reports _total and _created per series: one removal each.
    doomed = {tuple(s.labels[n] for n in labelnames) for s in family.samples if where(s.labels)}
    for values in doomed:
        metric.remove(*values)


# The label values each owner (a platform) last set on a gauge. Its stale series are found
# here rather than by `collect()`, which renders every platform's series and, run on every
# status refresh, made those refreshes quadratic in the number of platforms.
_SERIES: dict[tuple[Gauge, str], set[tuple[str, ...]]] = {}


def _replace_series(gauge: Gauge, owner: str, values: Mapping[tuple[str, ...], float]) -> None:
    """The owner's series of `gauge` become exactly `values`: what is no longer so goes from
    /metrics rather than staying at its last value."""
    key = (gauge, owner)
    for stale in _SERIES.pop(key, set()) - values.keys():
        gauge.remove(*stale)
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    if values:
        _SERIES[key] = set(values)


def set_phase(namespace: str, name: str, phase: str | None) -> None:
    """One series per platform: the one for its current phase is 1, stale phases removed."""
    series: dict[tuple[str, ...], float] = {(namespace, name, phase): 1.0} if phase else {}
    _replace_series(PLATFORMS, f"{namespace}/{name}", series)


def set_replicas(namespace: str, name: str, replicas: Mapping[str, Replicas]) -> None:
    """Desired and ready replicas per component; components the design no longer has (a
    PostgreSQL turned off) are removed rather than left at their last value."""
    series: dict[tuple[str, ...], float] = {}
    for component, count in replicas.items():
        series[(namespace, name, component, "desired")] = count.desired
        series[(namespace, name, component, "ready")] = count.ready
    _replace_series(REPLICAS, f"{namespace}/{name}", series)


def forget_platform(namespace: str, name: str) -> None:
    set_phase(namespace, name, None)
    set_replicas(namespace, name, {})
    set_wal_spool(namespace, name, [])
    platform = f"{namespace}/{name}"
    set_symptoms(platform, {})
    remove_series(REMEDIATIONS_TOTAL, REMEDIATION_LABELS, lambda s: s["platform"] == platform)


# -- PostgreSQL's WAL archive (the healer's probes, duet_operator.probes) -------------------------

WAL_SPOOL_LABELS = ("namespace", "name", "pod")
WAL_SPOOL_FILES = Gauge(
    "duet_postgres_wal_spool_files",
    "WAL files a platform's PostgreSQL primary has spooled for archiving and its wal-archiver"
    " sidecar has not moved to the backup target yet, as last probed.",
    WAL_SPOOL_LABELS,
    registry=REGISTRY,
)
WAL_SPOOL_OLDEST = Gauge(
    "duet_postgres_wal_spool_oldest_seconds",
    "Age of the oldest WAL file waiting in the spool when last probed; 0 when none waits.",
    WAL_SPOOL_LABELS,
    registry=REGISTRY,
)


def set_wal_spool(namespace: str, name: str, spools: Sequence[WalSpool]) -> None:
    """The platform's spool readings (its primary's, while it archives); a pod no longer
    read (a failover, a failed probe, archiving turned off) loses its series."""
    owner = f"{namespace}/{name}"
    files: dict[tuple[str, ...], float] = {(namespace, name, s.pod): s.files for s in spools}
    oldest: dict[tuple[str, ...], float] = {
        (namespace, name, s.pod): s.oldest_seconds or 0.0 for s in spools
    }
    _replace_series(WAL_SPOOL_FILES, owner, files)
    _replace_series(WAL_SPOOL_OLDEST, owner, oldest)


# -- the healer ------------------------------------------------------------------------------------

REMEDIATION_LABELS = ("platform", "action", "mode", "result")
SYMPTOM_LABELS = ("platform", "symptom")
REMEDIATIONS_TOTAL = Counter(
    "duet_remediations_total",
    "Remediation steps by platform (namespace/name), action, autonomy mode and result"
    " (recorded, pending, applied, verified, failed, expired).",
    REMEDIATION_LABELS,
    registry=REGISTRY,
)
SYMPTOMS_ACTIVE = Gauge(
    "duet_symptoms_active",
    "Symptoms the healer sees now, by platform (namespace/name) and symptom type.",
    SYMPTOM_LABELS,
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
    series: dict[tuple[str, ...], float] = {(platform, s): float(n) for s, n in counts.items()}
    _replace_series(SYMPTOMS_ACTIVE, platform, series)


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


# -- backups (duet_operator.backups) ------------------------------------------------------------

BACKUP_LABELS = ("namespace", "platform", "outcome")
BACKUPS_TOTAL = Counter(
    "duet_backups_total",
    "Backup runs that ended, by namespace, platform and outcome (completed, failed).",
    BACKUP_LABELS,
    registry=REGISTRY,
)
BACKUP_DURATION = Histogram(
    "duet_backup_duration_seconds",
    "From a backup Job's start to its end, completed or failed.",
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
    registry=REGISTRY,
)
BACKUP_CLEANUPS_TOTAL = Counter(
    "duet_backup_cleanups_total",
    "Backup runs whose data Duet went to delete, by namespace, platform, trigger (retention:"
    " expired scheduled runs; deletion: a deletionPolicy Delete record deleted) and outcome"
    " (deleted, failed, refused).",
    (*BACKUP_LABELS, "trigger"),
    registry=REGISTRY,
)
