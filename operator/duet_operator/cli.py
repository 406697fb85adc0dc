"""The `duet` command line.

Scripts and CI depend on its commands and exit codes (../shared/DESIGN.md, "The command line
contract"); keep them stable. Invalid input exits 2 with a message on stderr naming the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from duet_agents.planner import capacity
from duet_agents.planner.errors import PlanningError
from duet_agents.planner.models import PlatformDesign
from duet_operator import __version__, credentials, yamlio
from duet_operator.approve_command import approve
from duet_operator.ask_command import ask
from duet_operator.manifests import InvalidInputError, load_platform
from duet_operator.memory_command import memory_app
from duet_operator.mock_command import mock
from duet_operator.models import DataPlatform
from duet_operator.models.dataplatform import PlannerProvider
from duet_operator.query_command import query_app
from duet_operator.render.config import RenderConfig
from duet_operator.render.platform import build_platform
from duet_operator.sql_command import sql_app
from duet_operator.status_command import status

if TYPE_CHECKING:
    from duet_agents.planner.graph import ModelPlan

app = typer.Typer(
    name="duet",
    help="Design, provision, heal and query analytics data platforms on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_INVALID_INPUT = 2
EXIT_PLAN_REFUSED = 1


class Output(enum.StrEnum):
    JSON = "json"
    YAML = "yaml"


FileOption = Annotated[
    Path, typer.Option("-f", "--file", help="A YAML file with a DataPlatform.", show_default=False)
]


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"duet: {message}", err=True)
    raise typer.Exit(code)


def plan_file(file: Path) -> tuple[DataPlatform, PlatformDesign]:
    """The platform in `file` and its design, or the exit the command contract names."""
    try:
        platform = load_platform(file)
        return platform, capacity.plan(platform.spec.plan_request())
    except InvalidInputError as e:
        fail(str(e), EXIT_INVALID_INPUT)
    except PlanningError as e:
        fail(str(e), EXIT_PLAN_REFUSED)


def plan_file_with_model(file: Path, provider: PlannerProvider) -> PlatformDesign:
    """The design a model proposes and Duet checks, with keys and endpoints from the
    environment as the SDKs read them (OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_...); a
    spec.planner.baseURL in the file wins. A model that fails is said on stderr, and the
    built-in design follows: the command still answers."""
    from duet_agents.llm.factory import chat_model  # noqa: PLC0415 - the SDKs load slowly
    from duet_agents.planner.graph import plan_with_model  # noqa: PLC0415
    from duet_operator.settings import OperatorSettings  # noqa: PLC0415

    try:
        platform = load_platform(file)
    except InvalidInputError as e:
        fail(str(e), EXIT_INVALID_INPUT)
    spec = platform.spec.planner
    name = spec.model or OperatorSettings().planner_default_models.get(str(provider), "")
    model = chat_model(str(provider), name, base_url=spec.base_url)

    async def ask() -> ModelPlan:
        async with contextlib.aclosing(model):
            return await plan_with_model(platform.spec.plan_request(), model)

    try:
        result = asyncio.run(ask())
    except PlanningError as e:
        fail(str(e), EXIT_PLAN_REFUSED)
    if result.fallback_reason:
        typer.echo(
            f"duet: the {provider} model {name} was not used ({result.fallback_reason}); "
            "the built-in design follows",
            err=True,
        )
    return result.design


@app.callback()
def main() -> None:
    """Design, provision, heal and query analytics data platforms on Kubernetes."""


@app.command()
def version() -> None:
    """Print Duet's version."""
    typer.echo(__version__)


@app.command()
def plan(
    file: FileOption,
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.YAML,
    planner: Annotated[
        PlannerProvider, typer.Option(help="Who designs the platform.")
    ] = PlannerProvider.BUILTIN,
) -> None:
    """Design a platform from a DataPlatform file, with no cluster: the design on stdout.

    Exit 2: the file is invalid (the message names the field). Exit 1: no design meets the
    requirements within the budget (the message gives the minimum cost).
    """
    if planner == PlannerProvider.BUILTIN:
        _, design = plan_file(file)
    else:
        design = plan_file_with_model(file, planner)
    wire = design.wire()
    if output == Output.JSON:
        typer.echo(json.dumps(wire, indent=2, ensure_ascii=False))
    else:
        typer.echo(yamlio.dump(wire, sort_keys=False), nl=False)


@app.command()
def render(file: FileOption) -> None:
    """The Kubernetes manifests of a platform's design, as multi-document YAML.

    Credentials are generated afresh on every run: applying the output creates a platform
    with new passwords, which is what a test or a GitOps bootstrap wants.
    """
    platform, design = plan_file(file)
    manifests = build_platform(platform, design, RenderConfig(), credentials.fill())
    typer.echo(yamlio.dump_all(manifests, sort_keys=False), nl=False)


@app.command()
def docs(
    database: Annotated[str, typer.Option(help="chdb:///path, clickhouse://..., postgresql://...")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Markdown documentation of a database's schema, with a Mermaid ERD.

    Connects read-only; sample values of low-cardinality columns are read through the SQL
    firewall. Exit 2: the URL is invalid or the database cannot be reached.
    """
    from duet_agents.query.docs import render_markdown, sample_values  # noqa: PLC0415
    from duet_agents.query.engines import QueryError, connect  # noqa: PLC0415

    try:
        with connect(database) as engine:
            catalog = engine.introspect()
            text = render_markdown(catalog, samples=sample_values(engine, catalog))
    except QueryError as e:
        fail(str(e), EXIT_INVALID_INPUT)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


operator_app = typer.Typer(help="Run the Duet operator.", no_args_is_help=True)
app.add_typer(operator_app, name="operator")
app.add_typer(sql_app, name="sql")
app.add_typer(query_app, name="query")
app.add_typer(memory_app, name="memory")
app.command("ask")(ask)
app.command("status")(status)
app.command("mock")(mock)
app.command("approve")(approve)


@operator_app.command("run")
def operator_run(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only this namespace (repeatable)."),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Port of /metrics, /healthz and /readyz (0: none).")
    ] = None,
    kubeconfig: Annotated[
        str | None, typer.Option(envvar="KUBECONFIG", help="Outside a cluster: its kubeconfig.")
    ] = None,
) -> None:
    """Run the operator in the foreground against the cluster (all namespaces by default)."""
    from duet_operator.main import run  # noqa: PLC0415 - kopf loads only for this command
    from duet_operator.settings import OperatorSettings  # noqa: PLC0415

    settings = OperatorSettings()
    if namespace:
        settings = settings.model_copy(update={"namespaces": namespace})
    if metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": metrics_port})
    run(settings, kubeconfig)


if __name__ == "__main__":
    app()
