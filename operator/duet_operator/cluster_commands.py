"""What the commands that talk to the cluster share (`duet status|approve`, `kubectl duet ...`):
the kubeconfig's client and namespace, errors that carry their exit code, and one way to
report them as kubectl does (a line on stderr, the code as the exit status)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import typer
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from duet_operator.models import GROUP, VERSION

T = TypeVar("T")


class CommandError(Exception):
    """A refusal to say in one line, with the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def current_namespace() -> str:
    """The namespace of the kubeconfig's current context, as kubectl uses it."""
    _, active = kube_config.list_kube_config_contexts()
    namespace: str = (active or {}).get("context", {}).get("namespace") or "default"
    return namespace


@contextlib.asynccontextmanager
async def cluster_api() -> AsyncIterator[ApiClient]:
    """A client of the kubeconfig's current context."""
    configuration = Configuration()
    await kube_config.load_kube_config(client_configuration=configuration)
    async with ApiClient(configuration) as api:
        yield api


async def get_custom(
    custom: CustomObjectsApi, kind: str, plural: str, name: str, namespace: str, *, missing: int
) -> dict[str, Any]:
    """One of Duet's objects; CommandError with exit code `missing` when there is none."""
    try:
        found: dict[str, Any] = await custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        )
    except ApiException as e:
        if e.status == 404:
            raise CommandError(
                f"{kind} {name} not found in namespace {namespace}", missing
            ) from None
        raise
    return found


def run(command: Coroutine[Any, Any, T], *, api_error: int) -> T:
    """Run `command`; a CommandError or a refusal of the API server (exit code `api_error`)
    ends the process with one line on stderr."""
    try:
        return asyncio.run(command)
    except CommandError as e:
        typer.echo(f"duet: {e}", err=True)
        raise typer.Exit(e.code) from None
    except ApiException as e:
        typer.echo(f"duet: the API server refused: {e.status} {e.reason}", err=True)
        raise typer.Exit(api_error) from None
