"""Healer benchmark: how long a platform in `auto` mode takes to heal itself.

N Ready platforms (one ClickHouse replica each), a failure injected into each the way the
kubelet reports it (tests/support/failures.py), and the healer left to cure it on its own:
a crash loop (restartPod), then an OOM kill (raiseMemory). Per incident, from the injection:
the failure shown in the API (the pod's status written by kwok: the floor nobody can beat),
the Remediation created (detection), Applied, and Verified (MTTR). Times are when the
API server's watch delivered each change, so they carry no polling interval. The operator's
own `duet_mttr_seconds` (detection to Verified) is scraped beside them as a cross-check.
The injections of a round are spread over one heal interval, since the healer's timer (which
verifies a remedy) ticks in step on platforms made together.

    python bench/heal.py [--platforms 5] [--kinds crash oom] [--heal-interval S]
                         [--spacing S] [--keep]

Starts its own local control plane (hack/testenv, name `bench-heal`) and operator, with the
operator's defaults unless a flag says otherwise: the figure is what a user gets.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.reconcile import histogram_quantile  # noqa: E402

from duet_operator.healing import HealSettings  # noqa: E402
from duet_operator.models import GROUP, VERSION  # noqa: E402
from duet_operator.render.naming import PLATFORM_LABEL  # noqa: E402
from duet_operator.settings import OperatorSettings  # noqa: E402
from tests.support.cluster import start_testenv, stop_testenv  # noqa: E402
from tests.support.crds import create_custom_object, install_crds  # noqa: E402
from tests.support.failures import Failure, inject_failure  # noqa: E402
from tests.support.operator import OperatorProcess  # noqa: E402
from tests.support.wait import WaitTimeoutError, wait_until  # noqa: E402

ENV = "bench-heal"
PREFIX = "bench-heal"
READY_TIMEOUT = 300
ROUND_TIMEOUT = 600
CLOSED = frozenset({"Verified", "Failed", "Rejected", "Expired"})


@dataclass(frozen=True)
class Kind:
    """A failure the healer cures by itself, and how each step of it shows in the API."""

    label: str
    failure: Failure
    symptom: str  # spec.symptom.type of its Remediation
    action: str  # spec.action.type expected in auto mode
    terminated: str  # lastState.terminated.reason the injected pod shows


KINDS = {
    "crash": Kind("crash loop", Failure.CRASH_LOOP, "CrashLoop", "restartPod", "Error"),
    "oom": Kind("OOM kill", Failure.OOM_KILLED, "OOMKilled", "raiseMemory", "OOMKilled"),
}
FIGURES = ("shown", "detected", "applied", "ready", "verified")
FIGURE_TITLES = {
    "shown": "failure shown in API",
    "detected": "detected (Remediation)",
    "applied": "Applied",
    "ready": "new pod Ready",
    "verified": "Verified (MTTR)",
}


def platform_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {
            "requirements": {"dataVolume": "100Gi"},
            "clickhouse": {"shards": 1, "replicas": 1},
            "postgres": {"enabled": False},
            "autonomy": {"mode": "auto", "actions": ["restartPod", "raiseMemory"]},
        },
    }


def target_pod(platform: str) -> str:
    return f"{platform}-clickhouse-0-0"


# -- what the API server says, and when ---------------------------------------------------------


class Recorder:
    """First arrival times (time.monotonic) of what two watches on the namespace deliver: each
    pod uid's terminated reasons, and each Remediation's creation and phases."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.first: dict[tuple[str, ...], float] = {}
        self.remediations: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._threads = [
            threading.Thread(target=self._follow, args=(self._pods, self._pod), daemon=True),
            threading.Thread(
                target=self._follow, args=(self._remediation_list, self._remediation), daemon=True
            ),
        ]

    def __enter__(self) -> Recorder:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _pods(self, **kwargs: Any) -> Any:
        return self.core.list_namespaced_pod(
            self.namespace, label_selector=PLATFORM_LABEL, **kwargs
        )

    def _remediation_list(self, **kwargs: Any) -> Any:
        return self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "remediations", **kwargs
        )

    def _follow(self, lister: Callable[..., Any], handle: Callable[[dict[str, Any]], None]) -> None:
        # Short watches resumed from the last resourceVersion: the thread can notice the stop
        # within seconds, and no change falls between two of them.
        version: str | None = None
        while not self._stop.is_set():
            stream = watch.Watch()
            kwargs: dict[str, Any] = {"timeout_seconds": 5, "deserialize": False}
            if version:
                kwargs["resource_version"] = version
            try:
                for event in stream.stream(lister, **kwargs):
                    at = time.monotonic()
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    with self._lock:
                        handle(obj | {"_at": at})
            except ApiException as e:
                if e.status != 410:
                    self._error = e
                    return
                version = None  # expired: list afresh (first arrivals are kept)
            except (OSError, urllib3.exceptions.HTTPError) as e:
                if not self._stop.is_set():
                    print(f"  watch interrupted, resuming: {e}", flush=True)
                    time.sleep(1)

    def check(self) -> None:
        """Raise what stopped a watch: without it the figures would silently stop coming."""
        if self._error is not None:
            raise RuntimeError("a watch of the benchmark failed") from self._error

    def _mark(self, key: tuple[str, ...], at: float) -> None:
        self.first.setdefault(key, at)

    def _pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            reason = ((status.get("lastState") or {}).get("terminated") or {}).get("reason")
            if reason:
                self._mark(("pod", uid, reason), pod["_at"])
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            self._mark(("ready", pod["metadata"]["name"], uid), pod["_at"])

    def ready_again(self, pod: str, old_uid: str, since: float) -> float | None:
        """When a pod of that name other than `old_uid` was first Ready after `since`: both
        remedies here replace the pod, so this is when the service came back."""
        with self._lock:
            found = [
                at
                for (what, *key), at in self.first.items()
                if what == "ready" and key[0] == pod and key[1] != old_uid and at >= since
            ]
        return min(found, default=None)

    def _remediation(self, record: dict[str, Any]) -> None:
        name = record["metadata"]["name"]
        # The latest state, stamped with its first arrival: the moment it was detected.
        created = self.remediations.get(name, record)["_at"]
        self.remediations[name] = record | {"_at": created}
        self._mark(("remediation", name, "created"), created)
        phase = (record.get("status") or {}).get("phase")
        if phase:
            self._mark(("remediation", name, phase), record["_at"])

    def when(self, *key: str) -> float | None:
        with self._lock:
            return self.first.get(key)

    def remediation_of(self, incident: Incident) -> str | None:
        """The Remediation made for `incident`: its pod, its symptom, after its injection."""
        with self._lock:
            for name, record in self.remediations.items():
                symptom = record["spec"]["symptom"]
                if (
                    symptom["object"] == f"pod/{incident.pod}"
                    and symptom["type"] == incident.kind.symptom
                    and record["_at"] >= incident.injected
                ):
                    return name
        return None

    def record(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self.remediations[name]


@dataclass
class Incident:
    platform: str
    pod: str
    uid: str
    kind: Kind
    injected: float

    def figures(self, recorder: Recorder) -> dict[str, float]:
        """Seconds from the injection to each step reached (a step skipped between two watch
        events counts as reached at the later one)."""
        times: dict[str, float | None] = {
            "shown": recorder.when("pod", self.uid, self.kind.terminated),
        }
        name = recorder.remediation_of(self)
        if name is not None:
            times["detected"] = recorder.when("remediation", name, "created")
            verified = recorder.when("remediation", name, "Verified")
            applied = recorder.when("remediation", name, "Applied")
            times["applied"] = applied if applied is not None else verified
            times["ready"] = recorder.ready_again(self.pod, self.uid, self.injected)
            times["verified"] = verified
        return {k: t - self.injected for k, t in times.items() if t is not None}

    def outcome(self, recorder: Recorder) -> str | None:
        """None while open; else the closing phase (and its message when it is not Verified)."""
        name = recorder.remediation_of(self)
        if name is None:
            return None
        record = recorder.record(name)
        status = record.get("status") or {}
        phase = status.get("phase")
        if phase not in CLOSED:
            return None
        if phase == "Verified":
            return "Verified"
        action = record["spec"]["action"]["type"]
        return f"{phase} ({action}): {status.get('message', '')}"


# -- the run ------------------------------------------------------------------------------------


def platform_phase(custom: Any, namespace: str, name: str) -> str | None:
    found = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "dataplatforms", name)
    phase: str | None = (found.get("status") or {}).get("phase")
    return phase


def pod_ready(core: Any, namespace: str, name: str) -> bool:
    pod = core.read_namespaced_pod(name, namespace)
    if pod.metadata.deletion_timestamp is not None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def wait_ready(core: Any, custom: Any, namespace: str, platforms: Iterable[str]) -> None:
    """Every platform Ready and its ClickHouse pod Ready: the injection stages act on a Ready pod
    only, and a platform still provisioning is left to its reconcile."""

    def ready(name: str) -> bool:
        return platform_phase(custom, namespace, name) == "Ready" and pod_ready(
            core, namespace, target_pod(name)
        )

    for name in platforms:
        wait_until(
            functools.partial(ready, name),
            timeout=READY_TIMEOUT,
            what=f"platform {name} and its pod to be Ready",
            interval=0.5,
            ignore=(ApiException,),
        )


def run_round(
    kind: Kind,
    platforms: list[str],
    *,
    namespace: str,
    core: Any,
    custom: Any,
    recorder: Recorder,
    spacing: float,
) -> list[Incident]:
    wait_ready(core, custom, namespace, platforms)
    incidents = []
    for name in platforms:
        pod = target_pod(name)
        uid: str = core.read_namespaced_pod(pod, namespace).metadata.uid
        injected = time.monotonic()
        inject_failure(core, (namespace, pod), kind.failure)
        incidents.append(Incident(name, pod, uid, kind, injected))
        if spacing:
            time.sleep(spacing)
    try:

        def closed() -> bool:
            recorder.check()
            return all(i.outcome(recorder) for i in incidents)

        wait_until(
            closed,
            timeout=ROUND_TIMEOUT,
            what=f"every {kind.label} to be healed or given up",
            interval=0.5,
        )
    except WaitTimeoutError as e:
        print(f"  {kind.label}: {e}", flush=True)
    return incidents


def mttr_histogram(text: str) -> dict[str, Any]:
    """The operator's duet_mttr_seconds: cumulative buckets by bound, count and sum."""
    found: dict[str, Any] = {"buckets": {}, "count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name != "duet_mttr_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                found["buckets"][float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_count"):
                found["count"] = sample.value
            elif sample.name.endswith("_sum"):
                found["sum"] = sample.value
    return found


def histogram_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        "buckets": {b: c - before["buckets"].get(b, 0.0) for b, c in after["buckets"].items()},
        "count": after["count"] - before["count"],
        "sum": after["sum"] - before["sum"],
    }


def quantile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def report_round(kind: Kind, incidents: list[Incident], recorder: Recorder) -> dict[str, Any]:
    figures = [i.figures(recorder) for i in incidents]
    outcomes = [i.outcome(recorder) or "open" for i in incidents]
    for incident, outcome in zip(incidents, outcomes, strict=True):
        if outcome != "Verified":
            print(f"  {incident.pod}: not healed: {outcome}", flush=True)
    healed = [f for f, o in zip(figures, outcomes, strict=True) if o == "Verified"]
    for incident in incidents:
        name = recorder.remediation_of(incident)
        action = recorder.record(name)["spec"]["action"]["type"] if name else kind.action
        if action != kind.action:
            print(f"  {incident.pod}: remedied by {action}, not {kind.action}", flush=True)
    rows: dict[str, list[float]] = {
        figure: sorted(f[figure] for f in healed if figure in f) for figure in FIGURES
    }
    # Ours, comparable with the operator's histogram: from the Remediation to Verified.
    detection_to_verified = [f["verified"] - f["detected"] for f in healed]
    return {
        "kind": kind,
        "rows": rows,
        "healed": len(healed),
        "incidents": len(incidents),
        "detection_to_verified": detection_to_verified,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"\n{'failure':<11} {'from injection to':<24} {'p50':>7} {'p95':>7} {'max':>7} {'n':>3}")
    for result in results:
        for figure in FIGURES:
            values = result["rows"][figure]
            if not values:
                continue
            print(
                f"{result['kind'].label:<11} {FIGURE_TITLES[figure]:<24} "
                f"{quantile(values, 0.5):>6.1f}s {quantile(values, 0.95):>6.1f}s "
                f"{max(values):>6.1f}s {len(values):>3}"
            )


def print_cross_check(result: dict[str, Any], operator: dict[str, Any]) -> None:
    ours = result["detection_to_verified"]
    if not operator["count"] or not ours:
        label, count = result["kind"].label, operator["count"]
        print(f"{label}: nothing to cross-check (the operator observed {count:.0f})")
        return
    print(
        f"{result['kind'].label}: operator duet_mttr_seconds (Remediation created -> Verified): "
        f"{operator['count']:.0f} observed, mean {operator['sum'] / operator['count']:.1f}s, "
        f"p50 ~{histogram_quantile(operator['buckets'], 0.5):.0f}s (from its buckets); "
        f"measured here: {len(ours)}, mean {statistics.mean(ours):.1f}s "
        "(the operator counts from creationTimestamp, whole seconds)"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--platforms", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=["crash", "oom"])
    parser.add_argument(
        "--heal-interval",
        type=float,
        default=None,
        help="DUET_HEAL_INTERVAL_SECONDS for the operator (default: the operator's own)",
    )
    parser.add_argument(
        "--spacing",
        type=float,
        default=None,
        help="seconds between two injections of a round (default: the heal interval divided by"
        " the platforms, so the failures meet the healer's timer at every phase; 0: all at once)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the control plane and the platforms (the operator is stopped)",
    )
    args = parser.parse_args()

    heal_interval = args.heal_interval or HealSettings.model_fields["interval_seconds"].default
    # Platforms made together have their timers in step: failures injected all at once would
    # all meet the timer at the same phase, and the run would be one sample taken N times. A
    # user's failures come at any moment, so spread them over one interval.
    spacing = heal_interval / args.platforms if args.spacing is None else args.spacing
    resync = OperatorSettings.model_fields["resync_seconds"].default
    apply_retry = OperatorSettings.model_fields["apply_retry_seconds"].default
    settings = {
        "DUET_HEAL_INTERVAL_SECONDS": str(heal_interval),
        "DUET_APPLY_RETRY_SECONDS": str(apply_retry),
    }
    print(
        f"settings: {args.platforms} platforms in auto mode, failures {' then '.join(args.kinds)}, "
        f"injected {'all at once' if not spacing else f'{spacing:g}s apart'}; "
        f"heal interval {heal_interval:g}s, resync {resync:g}s, apply retry {apply_retry:g}s; "
        f"{os.cpu_count()} cores",
        flush=True,
    )

    kubeconfig = start_testenv(ENV)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    install_crds(api)
    log = Path(tempfile.mkdtemp(prefix="duet-bench-heal-")) / "operator.log"
    operator = OperatorProcess(
        kubeconfig, log, resync_seconds=resync, namespaces=f"{PREFIX}-*", env=settings
    )
    namespace = f"{PREFIX}-{uuid.uuid4().hex[:8]}"
    results: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    try:
        operator.start()
        print(f"operator log: {log}", flush=True)
        core.create_namespace({"metadata": {"name": namespace}})
        platforms = [f"p{i:02d}" for i in range(args.platforms)]
        with Recorder(api, namespace) as recorder:
            for name in platforms:
                create_custom_object(custom, namespace, platform_body(name))
            for key in args.kinds:
                kind = KINDS[key]
                before = mttr_histogram(operator.metrics())
                incidents = run_round(
                    kind,
                    platforms,
                    namespace=namespace,
                    core=core,
                    custom=custom,
                    recorder=recorder,
                    spacing=spacing,
                )
                result = report_round(kind, incidents, recorder)
                results.append(result)
                checks.append(histogram_delta(before, mttr_histogram(operator.metrics())))
                print(f"{kind.label}: {result['healed']}/{result['incidents']} healed", flush=True)
    finally:
        operator.stop()
        if args.keep:
            print(f"kept: KUBECONFIG={kubeconfig}, namespace {namespace}")
        else:
            stop_testenv(ENV)

    print_table(results)
    print()
    for result, check in zip(results, checks, strict=True):
        print_cross_check(result, check)
    parts = []
    for result in results:
        mttr, detected = result["rows"]["verified"], result["rows"]["detected"]
        if not mttr:
            parts.append(f"{result['kind'].label} not healed (0/{result['incidents']})")
            continue
        ready = result["rows"]["ready"]
        back = f", pod Ready again p50 {quantile(ready, 0.5):.1f} s" if ready else ""
        parts.append(
            f"{result['kind'].label} MTTR p50 {quantile(mttr, 0.5):.1f} s "
            f"p95 {quantile(mttr, 0.95):.1f} s (detected p50 {quantile(detected, 0.5):.1f} s"
            f"{back}; {result['healed']}/{result['incidents']} incidents)"
        )
    shown = [v for r in results for v in r["rows"]["shown"]]
    floor = f", the failure showing in the API after {quantile(shown, 0.5):.1f} s" if shown else ""
    print(
        f"\nheal: {'; '.join(parts)}; from injection{floor}; heal interval {heal_interval:g} s, "
        f"injections {spacing:g} s apart; {os.cpu_count()} cores"
    )
    return 0 if all(r["healed"] == r["incidents"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
