"""Volumes across design changes: a StatefulSet's claim templates are immutable, so a bigger
design grows the existing claims instead, and no claim ever shrinks or is recreated."""

from __future__ import annotations

import copy
from typing import Any

from duet_agents.planner.models import PlatformDesign
from duet_agents.units import parse_quantity
from duet_operator.render.naming import Names

Manifest = dict[str, Any]

# What the API server refuses to change in a StatefulSet after creation.
IMMUTABLE_STATEFULSET_FIELDS = (
    "selector",
    "serviceName",
    "podManagementPolicy",
    "volumeClaimTemplates",
)


def keep_immutable_fields(manifests: list[Manifest], existing: list[Manifest]) -> list[Manifest]:
    """The manifests, with each existing StatefulSet's immutable fields as they are."""
    current = {s["metadata"]["name"]: s for s in existing}
    kept = []
    for manifest in manifests:
        live = current.get(manifest["metadata"]["name"])
        if manifest["kind"] != "StatefulSet" or live is None:
            kept.append(manifest)
            continue
        adopted = copy.deepcopy(manifest)
        for key in IMMUTABLE_STATEFULSET_FIELDS:
            if key in live.get("spec", {}):
                adopted["spec"][key] = _template_config(live["spec"][key], key)
        kept.append(adopted)
    return kept


def _template_config(value: Any, key: str) -> Any:
    # The live claim templates carry status and defaults; send back what was configured.
    if key != "volumeClaimTemplates":
        return value
    return [
        {"metadata": {k: v for k, v in t["metadata"].items() if k in ("name", "labels")},
         "spec": t["spec"]}
        for t in value
    ]  # fmt: skip


def wanted_sizes(names: Names, design: PlatformDesign) -> dict[str, str]:
    """StatefulSet name -> the size its volumes should have."""
    sizes = {
        names.shard(i): design.clickhouse.storage.size for i in range(design.clickhouse.shards)
    }
    if design.clickhouse.keeper.replicas:
        sizes[names.keeper] = design.clickhouse.keeper.storage.size
    if design.postgres.enabled and design.postgres.instances:
        sizes[names.postgres] = design.postgres.storage.size
    return sizes


def claim_owner(claim: str) -> str:
    """The StatefulSet of a claim made from its `data` template: `data-<statefulset>-<ordinal>`."""
    return claim.removeprefix("data-").rsplit("-", 1)[0]


def claim_growth(sizes: dict[str, str], claims: list[Manifest]) -> list[Manifest]:
    """Patches that grow bound claims smaller than their StatefulSet's wanted size; a claim
    larger than wanted is left as it is."""
    patches = []
    for claim in claims:
        name = claim["metadata"]["name"]
        wanted = sizes.get(claim_owner(name))
        current = claim.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
        if wanted is None or current is None:
            continue
        # Only a bound claim can be resized; one still pending is grown once bound.
        if (claim.get("status") or {}).get("phase") != "Bound":
            continue
        if parse_quantity(wanted) > parse_quantity(current):
            patches.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": name, "namespace": claim["metadata"]["namespace"]},
                    "spec": {"resources": {"requests": {"storage": wanted}}},
                }
            )
    return patches


def templates_behind(sizes: dict[str, str], statefulsets: list[Manifest]) -> bool:
    """Some StatefulSet's claim template asks for less than its volumes should have: the
    claims it makes for new replicas start small and must be grown after it makes them."""
    for statefulset in statefulsets:
        wanted = sizes.get(statefulset["metadata"]["name"])
        if wanted is None:
            continue
        for template in statefulset.get("spec", {}).get("volumeClaimTemplates", []):
            asked = template.get("spec", {}).get("resources", {}).get("requests", {})
            if "storage" in asked and parse_quantity(asked["storage"]) < parse_quantity(wanted):
                return True
    return False
