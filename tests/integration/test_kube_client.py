"""The operator's API client (kube/client.py) against the real API server: what every
reconcile stands on, server-side apply above all."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from duet_operator.kube.client import (
    FIELD_MANAGER,
    JSON_PATCH,
    KindMissingError,
    Kube,
    KubeError,
)
from duet_operator.models import API_VERSION

T = TypeVar("T")


def config_map(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"suite": "kube-client"}},
        "data": data,
    }


def with_kube(kubeconfig: Path, scenario: Callable[[Kube], Awaitable[T]]) -> T:
    async def run() -> T:
        async with await Kube.connect(str(kubeconfig)) as kube:
            return await scenario(kube)

    return asyncio.run(run())


def test_server_side_apply_owns_exactly_the_fields_it_sets(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario(kube: Kube) -> None:
        assert kube.namespace == "default"  # the kubeconfig's context names none
        dry = await kube.apply(config_map("c", namespace, {"a": "1"}), dry_run=True)
        assert dry["data"] == {"a": "1"}
        assert await kube.get("v1", "ConfigMap", "c", namespace) is None

        applied = await kube.apply(config_map("c", namespace, {"a": "1", "b": "2"}))
        managers = {m["manager"] for m in applied["metadata"]["managedFields"]}
        assert managers == {FIELD_MANAGER}
        # A field we stop setting is one we no longer own: server-side apply removes it.
        again = await kube.apply(config_map("c", namespace, {"a": "1"}))
        assert again["data"] == {"a": "1"}

        listed = await kube.list_objects("v1", "ConfigMap", namespace, "suite=kube-client")
        assert [(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in listed] == [
            ("v1", "ConfigMap", "c")
        ]
        assert await kube.list_objects("v1", "ConfigMap", namespace, "suite=other") == []

        assert await kube.delete("v1", "ConfigMap", "c", namespace) is True
        assert await kube.delete("v1", "ConfigMap", "c", namespace) is False
        assert await kube.get("v1", "ConfigMap", "c", namespace) is None

    with_kube(kubeconfig, scenario)


def test_a_refusal_says_what_the_server_said(kubeconfig: Path, namespace: str) -> None:
    async def scenario(kube: Kube) -> None:
        bad = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": namespace},
            "spec": {"ports": [{"port": 70000}]},
        }
        with pytest.raises(KubeError) as refused:
            await kube.apply(bad)
        assert refused.value.code == 422
        assert refused.value.reason == "Invalid"
        assert refused.value.target == "Service/s"
        assert "spec.ports[0].port" in str(refused.value)

        await kube.create(config_map("once", namespace, {}))
        with pytest.raises(KubeError) as exists:
            await kube.create(config_map("once", namespace, {}))
        assert (exists.value.code, exists.value.reason) == (409, "AlreadyExists")

    with_kube(kubeconfig, scenario)


def test_custom_resources_patches_and_status(
    kubeconfig: Path, make_namespace: Callable[[str], str], crds: list[str]
) -> None:
    # Not a t-* namespace: the session's operator would reconcile the platform meanwhile.
    namespace = make_namespace("kc")
    platform = {
        "apiVersion": API_VERSION,
        "kind": "DataPlatform",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"requirements": {"dataVolume": "10Gi"}},
    }

    async def scenario(kube: Kube) -> dict[str, Any]:
        await kube.apply(platform)
        await kube.patch_status(API_VERSION, "DataPlatform", "p", namespace, {"phase": "Planning"})
        await kube.patch(
            API_VERSION, "DataPlatform", "p", namespace, {"metadata": {"labels": {"x": "1"}}}
        )
        await kube.patch(
            API_VERSION,
            "DataPlatform",
            "p",
            namespace,
            [{"op": "add", "path": "/metadata/annotations", "value": {"y": "2"}}],
            content_type=JSON_PATCH,
        )
        found = await kube.get(API_VERSION, "DataPlatform", "p", namespace)
        assert found is not None
        return found

    found = with_kube(kubeconfig, scenario)
    assert found["status"]["phase"] == "Planning"
    assert found["metadata"]["labels"] == {"x": "1"}
    assert found["metadata"]["annotations"] == {"y": "2"}


def test_a_kind_the_server_does_not_serve(kubeconfig: Path, namespace: str) -> None:
    async def scenario(kube: Kube) -> None:
        with pytest.raises(KindMissingError) as missing:
            await kube.get("v1", "Gadget", "g", namespace)
        assert missing.value.not_found
        assert "no kind Gadget in v1" in str(missing.value)
        # Cluster-scoped kinds take no namespace in their path.
        assert await kube.get("v1", "Namespace", namespace) is not None

    with_kube(kubeconfig, scenario)
