"""`duet approve NAME [-n NAMESPACE]`: approve a Remediation the healer left Pending.

It sets `spec.approved: true` (what `kubectl patch` would), through `$KUBECONFIG`; the operator
then applies it as soon as nothing else is in flight on the platform. Exit 2 when the
Remediation does not exist, 1 when it is past approving (applied, verified, expired...).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from duet_operator.models import GROUP, VERSION

PLURAL = "remediations"
EXIT_CLOSED = 1
EXIT_NOT_FOUND = 2
WAITING = ("Pending", "Approved", None)


class ApproveError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def current_namespace() -> str:
    """The namespace of the kubeconfig's current context, as kubectl uses it."""
    _, active = kube_config.list_kube_config_contexts()
    namespace: str = (active or {}).get("context", {}).get("namespace") or "default"
    return namespace


def describe(remediation: dict[str, Any]) -> str:
    spec = remediation.get("spec") or {}
    action = spec.get("action") or {}
    target = (action.get("parameters") or {}).get("target", "")
    return f"{action.get('type')} on {target}" if target else str(action.get("type"))


async def approve_remediation(name: str, namespace: str) -> str:
    """Approve it; the line to print. ApproveError when it cannot be approved."""
    configuration = Configuration()
    await kube_config.load_kube_config(client_configuration=configuration)
    async with ApiClient(configuration) as api:
        custom = CustomObjectsApi(api)
        try:
            found: dict[str, Any] = await custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as e:
            if e.status == 404:
                raise ApproveError(
                    f"Remediation {name} not found in namespace {namespace}", EXIT_NOT_FOUND
                ) from None
            raise
        phase = (found.get("status") or {}).get("phase")
        what = describe(found)
        if phase not in WAITING:
            raise ApproveError(
                f"Remediation {name} ({what}) is {phase}: nothing to approve", EXIT_CLOSED
            )
        if (found.get("spec") or {}).get("approved"):
            return f"remediation {name} ({what}) was already approved"
        await custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            # A JSON patch (a list): the client sends a dict as a JSON patch too, and fails.
            [{"op": "add", "path": "/spec/approved", "value": True}],
        )
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
    try:
        line = asyncio.run(approve_remediation(name, namespace or current_namespace()))
    except ApproveError as e:
        typer.echo(f"duet: {e}", err=True)
        raise typer.Exit(e.code) from None
    except ApiException as e:
        typer.echo(f"duet: the API server refused: {e.status} {e.reason}", err=True)
        raise typer.Exit(EXIT_CLOSED) from None
    typer.echo(line)
