"""What a Job and its pods say, read from their status: which step ended how, and with what
words. Pure functions over the objects as the API returns them; the backups' runs
(backups.py) and a platform's restore (restore.py) read their Jobs with them.

A step that fails leaves the kubelet its log's tail as its termination message when it runs
with `terminationMessagePolicy: FallbackToLogsOnError`, which is how a status can say why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Pods of a Job carry its uid (Kubernetes 1.27+); names can be reused, uids cannot.
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
# A failing step's last log lines (its termination message) quoted in status, at most.
MAX_QUOTE = 600


def statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The pod's container statuses, init containers first (the order its steps run)."""
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def terminated(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return (container.get("state") or {}).get("terminated") or {}


def newest(pods: Iterable[Mapping[str, Any]], phase: str) -> Mapping[str, Any] | None:
    found = [p for p in pods if (p.get("status") or {}).get("phase") == phase]
    found.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
    return found[-1] if found else None


def failed_step(container: Mapping[str, Any], ending: Mapping[str, Any]) -> str:
    """`step NAME exited with code N (Reason): last words`, for a step's non-zero `ending`."""
    detail = (
        f"step {container.get('name')} exited with code {ending.get('exitCode')}"
        f" ({ending.get('reason') or 'Error'})"
    )
    message = str(ending.get("message") or "").strip()
    if message:
        detail += ": " + message[-MAX_QUOTE:]
    return detail


def failure_detail(pods: Iterable[Mapping[str, Any]]) -> str:
    """Which step of the last failed pod failed, and its last words (its log's tail, which the
    kubelet puts in the termination message of a step that wrote none)."""
    pod = newest(pods, "Failed")
    if pod is None:
        return ""
    for container in statuses(pod):
        ending = terminated(container)
        if ending and ending.get("exitCode", 0) != 0:
            return failed_step(container, ending)
    return ""


def any_step_started(pods: Iterable[Mapping[str, Any]]) -> bool:
    """Some step of some pod has started (an init container runs while the pod is Pending)."""
    return any(
        "running" in (c.get("state") or {}) or "terminated" in (c.get("state") or {})
        for pod in pods
        for c in statuses(pod)
    )


def job_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The Job's condition `type_` when it is True (Complete, Failed), else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            found: Mapping[str, Any] = condition
            return found
    return None
