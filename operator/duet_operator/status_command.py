"""`status NAME [-n NAMESPACE] [-o text|json]`: a platform at a glance, as `kubectl cnpg status`
shows a cluster: its design, conditions, endpoints and the healer's latest decisions.

Reading is one GET of the DataPlatform and one LIST of Remediations in its namespace, through
`$KUBECONFIG`; everything printed is formatted by the pure functions below, so the output is
tested without a cluster. Exit 2 when the platform does not exist.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict, ValidationError

from duet_operator.cluster_commands import (
    API_VERSION,
    CommandError,
    cluster,
    current_namespace,
    get_custom,
    run,
)
from duet_operator.models import DataPlatform, Remediation

EXIT_NOT_FOUND = 2
EXIT_API = 1
RECENT_REMEDIATIONS = 5


class Output(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class PlatformStatus(BaseModel):
    """What `status` shows: the platform and its latest remediations, newest first."""

    model_config = ConfigDict(frozen=True)

    platform: DataPlatform
    remediations: list[Remediation]


def recent(remediations: Sequence[Remediation], platform: str, limit: int) -> list[Remediation]:
    """The platform's last `limit` decisions, newest first."""
    mine = [r for r in remediations if r.spec.platform_ref.name == platform]
    oldest = datetime.min.replace(tzinfo=UTC)
    mine.sort(key=lambda r: (r.metadata.creation_timestamp or oldest, r.metadata.name))
    return list(reversed(mine))[:limit]


def age(since: datetime | None, now: datetime) -> str:
    """kubectl's short age: 45s, 12m, 3h, 5d."""
    if since is None:
        return "-"
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def columns(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Rows under headers, each column as wide as its widest cell, as kubectl prints them."""
    table = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = [
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table
    ]
    return "\n".join(indent + line.rstrip() for line in lines)


def render_text(status: PlatformStatus, now: datetime) -> str:
    platform = status.platform
    meta, st = platform.metadata, platform.status
    observed = st.observed_generation if st.observed_generation is not None else "-"
    lines = [
        f"Platform:    {meta.name}",
        f"Namespace:   {meta.namespace or '-'}",
        f"Phase:       {st.phase or 'Unknown'}",
        f"Generation:  {meta.generation or '-'} (observed {observed})",
    ]
    if st.planner is not None:
        model = f" {st.planner.model}" if st.planner.model else ""
        lines.append(f"Planner:     {st.planner.provider}{model}")
    lines += ["", "Design", *_design_lines(platform), ""]
    lines.append("Conditions")
    if st.conditions:
        rows = [
            [c.type, str(c.status), c.reason, age(c.last_transition_time, now), c.message]
            for c in st.conditions
        ]
        lines.append(columns(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows))
    else:
        lines.append("  none reported yet")
    lines += ["", "Endpoints"]
    endpoints = st.endpoints.wire() if st.endpoints is not None else {}
    if endpoints:
        lines.append(columns(["NAME", "URL"], sorted(endpoints.items())))
    else:
        lines.append("  none yet")
    lines += ["", "Recent remediations"]
    if status.remediations:
        lines.append(
            columns(
                ["NAME", "PHASE", "ACTION", "SYMPTOM", "MODE", "AGE"],
                [_remediation_row(r, now) for r in status.remediations],
            )
        )
    else:
        lines.append("  none")
    return "\n".join(lines) + "\n"


def render_json(status: PlatformStatus) -> dict[str, Any]:
    """The same facts for scripts: the platform's status as the API has it, plus the
    remediations' names and states."""
    platform = status.platform
    return {
        "name": platform.metadata.name,
        "namespace": platform.metadata.namespace,
        "generation": platform.metadata.generation,
        "status": platform.status.wire(),
        "remediations": [
            {
                "name": r.metadata.name,
                "phase": str(r.status.phase) if r.status.phase else None,
                "action": r.spec.action.wire(),
                "symptom": str(r.spec.symptom.type),
                "object": r.spec.symptom.object,
                "mode": str(r.spec.mode),
                "approved": r.spec.approved,
                "created": _iso(r.metadata.creation_timestamp),
            }
            for r in status.remediations
        ],
    }


def _design_lines(platform: DataPlatform) -> list[str]:
    design = platform.status.design
    if design is None:
        return ["  not planned yet"]
    ch = design.clickhouse
    rows = [
        [
            "ClickHouse",
            ch.version,
            f"{ch.shards} shard(s) x {ch.replicas} replica(s)",
            f"{ch.resources.cpu} CPU, {ch.resources.memory}",
            ch.storage.size,
        ],
    ]
    if ch.keeper.replicas:
        keeper = ch.keeper
        rows.append(
            [
                "Keeper",
                "",
                f"{keeper.replicas} replica(s)",
                f"{keeper.resources.cpu} CPU, {keeper.resources.memory}",
                keeper.storage.size,
            ]
        )
    pg = design.postgres
    if pg.enabled:
        rows.append(
            [
                "PostgreSQL",
                pg.version,
                f"{pg.instances} instance(s)",
                f"{pg.resources.cpu} CPU, {pg.resources.memory}",
                pg.storage.size,
            ]
        )
    lines = [columns(["", "VERSION", "TOPOLOGY", "EACH", "STORAGE"], rows)]
    lines.append(f"  Estimated cost: ${design.estimated_monthly_cost_usd:,.2f} a month")
    lines += [f"  - {reason}" for reason in design.rationale]
    return lines


def _remediation_row(remediation: Remediation, now: datetime) -> list[str]:
    spec = remediation.spec
    target = spec.action.parameters.get("target")
    action = f"{spec.action.type} {target}" if target else str(spec.action.type)
    return [
        remediation.metadata.name,
        str(remediation.status.phase or "Pending"),
        action,
        str(spec.symptom.type),
        str(spec.mode) + ("" if not spec.approved else " (approved)"),
        age(remediation.metadata.creation_timestamp, now),
    ]


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


async def read_status(name: str, namespace: str) -> PlatformStatus:
    async with cluster() as kube:
        found = await get_custom(kube, "DataPlatform", name, namespace, missing=EXIT_NOT_FOUND)
        listed = await kube.list_objects(API_VERSION, "Remediation", namespace)
    try:
        platform = DataPlatform.model_validate(found)
        remediations = [Remediation.model_validate(item) for item in listed]
    except ValidationError as e:
        raise CommandError(
            f"the cluster's objects do not match this version of duet: {e.errors()[0]['msg']}",
            EXIT_API,
        ) from None
    return PlatformStatus(
        platform=platform, remediations=recent(remediations, name, RECENT_REMEDIATIONS)
    )


def status(
    name: Annotated[str, typer.Argument(help="The DataPlatform (kubectl get dp).")],
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", help="Its namespace (default: the kubeconfig's current one)."
        ),
    ] = None,
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.TEXT,
) -> None:
    """A platform's design, conditions, endpoints and latest remediations."""
    found = run(read_status(name, namespace or current_namespace()), api_error=EXIT_API)
    if output == Output.JSON:
        typer.echo(json.dumps(render_json(found), indent=2))
    else:
        typer.echo(render_text(found, datetime.now(UTC)), nl=False)
