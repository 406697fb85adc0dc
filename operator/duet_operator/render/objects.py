"""Small builders for the Kubernetes objects every component needs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from duet_agents.planner.models import Resources, Storage
from duet_operator.models import API_VERSION, DataPlatform
from duet_operator.models.common import ObjectMeta
from duet_operator.models.dataplatform import DeletionPolicy

Manifest = dict[str, Any]
CONFIG_HASH_ANNOTATION = "duet.aidatalabs.ai/config-hash"


class Owner(Protocol):
    """One of our custom resources, owner of the objects rendered for it."""

    @property
    def kind(self) -> str: ...

    @property
    def metadata(self) -> ObjectMeta: ...


def owner_reference(owner: Owner) -> dict[str, Any]:
    """Children are owned by their resource, so Kubernetes' garbage collector removes them
    with it; `controller: true` lets `kubectl get` and other controllers see who manages them."""
    return {
        "apiVersion": API_VERSION,
        "kind": owner.kind,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    owner: Owner, name: str, labels: dict[str, str], *, owned: bool = True
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.metadata.namespace,
        "labels": labels,
    }
    # Without a uid (`duet render` of a file) there is no owner to point at yet.
    if owned and owner.metadata.uid:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def content_hash(*parts: Any) -> str:
    """A stable hash of configuration, put on pod templates so a change rolls the pods."""
    encoded = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def container_resources(resources: Resources) -> dict[str, Any]:
    # Requests equal limits: the design sizes for the limit, and Guaranteed QoS keeps the
    # kernel's OOM killer off databases first.
    amounts = {"cpu": resources.cpu, "memory": resources.memory}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def volume_claim_template(name: str, storage: Storage, labels: dict[str, str]) -> dict[str, Any]:
    """The claim each pod gets. Labelled with the platform so its volumes can be found (and,
    under deletionPolicy Delete, removed) after the StatefulSet is gone. A StatefulSet's claim
    templates are immutable once created: growth happens on the claims themselves."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class:
        spec["storageClassName"] = storage.storage_class
    return {"metadata": {"name": name, "labels": labels}, "spec": spec}


def claim_retention(policy: DeletionPolicy) -> dict[str, str]:
    """What happens to a StatefulSet's volumes: kept when it is scaled down (data is never
    dropped by a resize), deleted with the platform only when the user asked for it."""
    when_deleted = "Delete" if policy == DeletionPolicy.DELETE else "Retain"
    return {"whenDeleted": when_deleted, "whenScaled": "Retain"}


def spread_replicas(selector: dict[str, str]) -> dict[str, Any]:
    """Prefer replicas of one shard (or Keeper members) on different nodes. Preferred, not
    required: a laptop with one node must still run a replicated design."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": selector},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }


def service(
    owner: Owner,
    name: str,
    labels: dict[str, str],
    selector: dict[str, str],
    ports: dict[str, int],
    *,
    headless: bool = False,
) -> Manifest:
    spec: dict[str, Any] = {"selector": selector, "ports": service_ports(ports)}
    if headless:
        # Pod DNS names for peers, who must find each other before they are Ready (Raft,
        # replication bootstrap).
        spec |= {"clusterIP": "None", "publishNotReadyAddresses": True}
    else:
        spec["type"] = "ClusterIP"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, name, labels),
        "spec": spec,
    }


def service_ports(ports: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
        for name, port in sorted(ports.items())
    ]


def container_ports(ports: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"name": name, "containerPort": port, "protocol": "TCP"}
        for name, port in sorted(ports.items())
    ]


def disruption_budget(
    owner: Owner, name: str, labels: dict[str, str], selector: dict[str, str]
) -> Manifest:
    """One voluntary disruption at a time (drains, upgrades) for a replicated group."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(owner, name, labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }


def config_map(
    platform: DataPlatform, name: str, labels: dict[str, str], data: dict[str, str]
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(platform, name, labels),
        "data": data,
    }


def secret(
    platform: DataPlatform, name: str, labels: dict[str, str], data: dict[str, str]
) -> Manifest:
    """Secrets are not owned by the platform: they outlive it unless deletionPolicy is Delete,
    so volumes that were retained can still be opened."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(platform, name, labels, owned=False),
        "stringData": data,
    }


def secret_env(name: str, secret_name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


POD_SECURITY = {
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}

CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


@dataclass(frozen=True)
class Workload:
    """What differs between the platform's StatefulSets; `statefulset` adds what they share:
    non-root pods spread over nodes, a config volume, a data claim, the retention policy."""

    name: str
    labels: dict[str, str]
    selector: dict[str, str]
    claim_labels: dict[str, str]
    service: str
    replicas: int
    pod_management: str
    config_hash: str
    config_map: str
    run_as: int
    containers: list[dict[str, Any]]
    storage: Storage
    termination_grace_seconds: int | None = None


def statefulset(platform: DataPlatform, w: Workload) -> Manifest:
    pod: dict[str, Any] = {
        "securityContext": POD_SECURITY
        | {"runAsUser": w.run_as, "runAsGroup": w.run_as, "fsGroup": w.run_as},
        "affinity": spread_replicas(w.selector),
        "containers": w.containers,
        "volumes": [{"name": "config", "configMap": {"name": w.config_map}}],
    }
    if w.termination_grace_seconds is not None:
        pod["terminationGracePeriodSeconds"] = w.termination_grace_seconds
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(platform, w.name, w.labels),
        "spec": {
            "serviceName": w.service,
            "replicas": w.replicas,
            "podManagementPolicy": w.pod_management,
            "selector": {"matchLabels": w.selector},
            "persistentVolumeClaimRetentionPolicy": claim_retention(platform.spec.deletion_policy),
            "template": {
                "metadata": {
                    "labels": w.labels,
                    "annotations": {CONFIG_HASH_ANNOTATION: w.config_hash},
                },
                "spec": pod,
            },
            "volumeClaimTemplates": [volume_claim_template("data", w.storage, w.claim_labels)],
        },
    }
