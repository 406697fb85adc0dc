"""`duet approve NAME [-n NAMESPACE]`: approve a Remediation the healer left Pending.

It sets `spec.approved: true` (what `kubectl patch` would), through `$KUBECONFIG`; the operator
then applies it as soon as nothing else is in flight on the platform. Exit 2 when the
Remediation does not exist, 1 when it is past approving (applied, verified, expired...).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from duet_operator.cluster_commands import (
    API_VERSION,
    CommandError,
    cluster,
    current_namespace,
    get_custom,
    run,
)

EXIT_CLOSED = 1
EXIT_NOT_FOUND = 2
WAITING = ("Pending", "Approved", None)


def describe(remediation: dict[str, Any]) -> str:
    spec = remediation.get("spec") or {}
    action = spec.get("action") or {}
    target = (action.get("parameters") or {}).get("target", "")
    return f"{action.get('type')} on {target}" if target else str(action.get("type"))


async def approve_remediation(name: str, namespace: str) -> str:
    """Approve it; the line to print. CommandError when it cannot be approved."""
    async with cluster() as kube:
        found = await get_custom(kube, "Remediation", name, namespace, missing=EXIT_NOT_FOUND)
        phase = (found.get("status") or {}).get("phase")
        what = describe(found)
        if phase not in WAITING:
            raise CommandError(
                f"Remediation {name} ({what}) is {phase}: nothing to approve", EXIT_CLOSED
            )
        if (found.get("spec") or {}).get("approved"):
            return f"remediation {name} ({what}) was already approved"
        await kube.patch(API_VERSION, "Remediation", name, namespace, {"spec": {"approved": True}})
    return (
        f"remediation {name} approved ({what}); the operator applies it when nothing else is"
        " in flight on the platform"
    )


def approve(
    name: Annotated[str, typer.Argument(help="The Remediation (kubectl get rem).")],
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", help="Its namespace (default: the kubeconfig's current one)."
        ),
    ] = None,
) -> None:
    """Approve a Pending Remediation: the operator applies it next."""
    line = run(approve_remediation(name, namespace or current_namespace()), api_error=EXIT_CLOSED)
    typer.echo(line)
