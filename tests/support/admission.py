"""What the API server would make of a rendered manifest, without storing it."""

from __future__ import annotations

from typing import Any

from kubernetes.dynamic import DynamicClient


def dry_run_apply(dynamic: DynamicClient, manifest: dict[str, Any]) -> Any:
    """Server-side apply with dryRun=All, as the operator's field manager: the object as the
    API server would store it (defaults filled, schema and admission checked), or an error."""
    resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    return dynamic.server_side_apply(
        resource,
        body=manifest,
        namespace=manifest["metadata"]["namespace"],
        field_manager="duet",
        dry_run="All",
        force_conflicts=True,
    )
