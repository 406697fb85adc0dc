"""What the commands that talk to the cluster share (`duet status|approve`, `kubectl duet ...`):
the kubeconfig's client and namespace, errors that carry their exit code, and one way to
report them as kubectl does (a line on stderr, the code as the exit status)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import typer

from duet_operator.kube.client import (
    ConfigError,
    Kube,
    KubeError,
    KubeUnreachableError,
    load_config,
)
from duet_operator.models import GROUP, VERSION

T = TypeVar("T")
API_VERSION = f"{GROUP}/{VERSION}"
EXIT_NO_CONFIG = 1


class CommandError(Exception):
    """A refusal to say in one line, with the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def current_namespace() -> str:
    """The namespace of the kubeconfig's current context, as kubectl uses it."""
    try:
        return load_config(prefer_in_cluster=False).namespace
    except ConfigError as e:
        typer.echo(f"duet: {e}", err=True)
        raise typer.Exit(EXIT_NO_CONFIG) from None


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[Kube]:
    """A client of the kubeconfig's current context."""
    async with await Kube.connect(prefer_in_cluster=False) as kube:
        yield kube


async def get_custom(
    kube: Kube, kind: str, name: str, namespace: str, *, missing: int
) -> dict[str, Any]:
    """One of Duet's objects; CommandError with exit code `missing` when there is none."""
    found = await kube.get(API_VERSION, kind, name, namespace)
    if found is None:
        raise CommandError(f"{kind} {name} not found in namespace {namespace}", missing)
    return found


def run(command: Coroutine[Any, Any, T], *, api_error: int) -> T:
    """Run `command`; a CommandError, a refusal of the API server or no answer from it (exit
    code `api_error`) ends the process with one line on stderr."""
    try:
        return asyncio.run(command)
    except CommandError as e:
        typer.echo(f"duet: {e}", err=True)
        raise typer.Exit(e.code) from None
    except KubeError as e:
        typer.echo(f"duet: the API server refused: {e}", err=True)
        raise typer.Exit(api_error) from None
    except (KubeUnreachableError, ConfigError) as e:
        typer.echo(f"duet: {e}", err=True)
        raise typer.Exit(api_error) from None
