"""Install Duet's generated CRDs into the cluster under test."""

from __future__ import annotations

from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.cluster import REPO
from tests.support.wait import wait_until


def install_crds(api_client: Any) -> list[str]:
    """Create or update every CRD in crds/ and wait until each is established."""
    ext = client.ApiextensionsV1Api(api_client)
    names = []
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        names.append(name)
        try:
            ext.create_custom_resource_definition(crd)
        except ApiException as e:
            if e.status != 409:
                raise
            current = ext.read_custom_resource_definition(name)
            crd["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, crd)

    def established() -> bool:
        return all(
            any(
                c.type == "Established" and c.status == "True"
                for c in ext.read_custom_resource_definition(n).status.conditions or []
            )
            for n in names
        )

    wait_until(established, timeout=30, what="Duet's CRDs to be established")
    return names


def create_custom_object(custom: Any, namespace: str, body: dict[str, Any]) -> Any:
    """Create a custom object, retrying only the 404 of a CRD whose discovery still lags its
    Established condition; any other refusal (a 422 from validation) propagates at once."""
    group, version = body["apiVersion"].split("/")
    plural = body["kind"].lower() + "s"

    def attempt() -> Any:
        try:
            return custom.create_namespaced_custom_object(group, version, namespace, plural, body)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    return wait_until(attempt, timeout=15, what=f"{body['kind']} to be created")
