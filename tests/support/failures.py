"""Make a pod fail the way the kubelet would report it, on the local control plane.

The failure is a label, `duet.aidatalabs.ai/inject=<kind>`, which kwok stages in
hack/testenv/stages/ turn into the pod status a real kubelet would write. Anyone trying the
healer by hand uses the same label with kubectl. Removing it heals the pod.
"""

from __future__ import annotations

import enum
from typing import Any

INJECT_LABEL = "duet.aidatalabs.ai/inject"


class Failure(enum.StrEnum):
    CRASH_LOOP = "CrashLoop"
    OOM_KILLED = "OOMKilled"
    NOT_READY = "NotReady"


def inject_failure(core: Any, pod: Any, kind: Failure | str) -> None:
    """Make `pod` (a V1Pod, or a (namespace, name) pair) fail as `kind`."""
    namespace, name = _ref(pod)
    core.patch_namespaced_pod(
        name, namespace, {"metadata": {"labels": {INJECT_LABEL: str(Failure(kind))}}}
    )


def clear_failure(core: Any, pod: Any) -> None:
    """Remove an injected failure; the pod turns Ready again with its restart count kept."""
    namespace, name = _ref(pod)
    core.patch_namespaced_pod(name, namespace, {"metadata": {"labels": {INJECT_LABEL: None}}})


def _ref(pod: Any) -> tuple[str, str]:
    if isinstance(pod, tuple):
        return pod[0], pod[1]
    return pod.metadata.namespace, pod.metadata.name
