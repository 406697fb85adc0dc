"""The kubectl plugin: `kubectl duet status|approve|plan|ask`, installed as `kubectl-duet`.

kubectl runs any `kubectl-duet` on PATH for `kubectl duet ...` and passes everything after
`duet` as it stands, so `-n`/`--namespace` come after the subcommand, as with the cloudnative-pg
plugin. The commands are the `duet` command's own (same exit codes), plus `status` and an
`ask` that goes to the platform's QueryAgent:

`ask NAME QUESTION` posts the question to a QueryAgent's `/v1/ask` through the API server's
service proxy. It needs nothing but the kubeconfig: no port-forward, and no database password
on the user's machine; the answer comes through the agent's SQL firewall, read-only session
and limits, under the user's RBAC (`services/proxy`). NAME is a QueryAgent, or a DataPlatform
that a QueryAgent serves (a Ready one first, then by name). No agent: exit 2, with what to apply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from duet_agents.query.settings import DEFAULT_PORT
from duet_operator import __version__
from duet_operator.approve_command import approve
from duet_operator.cli import plan
from duet_operator.cluster_commands import (
    API_VERSION,
    CommandError,
    cluster,
    current_namespace,
    get_custom,
    run,
)
from duet_operator.kube.client import KindMissingError
from duet_operator.models import QueryAgent
from duet_operator.models.backup import (
    BackupComponent,
    BackupDeletionPolicy,
    DataPlatformBackup,
)
from duet_operator.models.queryagent import QueryAgentPhase
from duet_operator.render.queryagent import deployment_name
from duet_operator.status_command import status

EXIT_USAGE = 2
EXIT_UNANSWERED = 3
EXIT_API = 1
ASK_TIMEOUT_SECONDS = 180  # above the server's own deadline for a model's answer

app = typer.Typer(
    name="kubectl-duet",
    help="Duet's data platforms from kubectl: status, approve, backup, plan, ask.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


NamespaceOption = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Default: the kubeconfig's current namespace."),
]


def resolve_agent(name: str, agents: Sequence[QueryAgent], namespace: str) -> QueryAgent:
    """The QueryAgent named `name`, else the one serving the platform `name` (a Ready one
    first, then by name)."""
    for agent in agents:
        if agent.metadata.name == name:
            return agent
    serving = [a for a in agents if a.spec.platform_ref and a.spec.platform_ref.name == name]
    if not serving:
        raise CommandError(
            f"no QueryAgent named {name} or serving the platform {name} in namespace "
            f"{namespace}; apply one with spec.platformRef.name: {name} "
            "(manifests/examples/queryagent.yaml)",
            EXIT_USAGE,
        )
    serving.sort(key=lambda a: (a.status.phase != QueryAgentPhase.READY, a.metadata.name))
    return serving[0]


def proxy_path(agent: QueryAgent, namespace: str, endpoint: str) -> str:
    """The API server's proxy path to the agent's Service: /api/v1/.../services/NAME:PORT/proxy."""
    service = deployment_name(agent)
    return f"/api/v1/namespaces/{namespace}/services/{service}:{DEFAULT_PORT}/proxy/{endpoint}"


def render_answer(agent: str, answer: dict[str, Any]) -> str:
    """The answer as `duet ask` prints it: how it was read, the SQL, then the rows."""
    lines = [f"-- {agent}: {answer.get('explanation', '')}", str(answer.get("sql", "")), ""]
    lines.append("\t".join(str(c.get("name", "")) for c in answer.get("columns", [])))
    lines += ["\t".join("" if v is None else str(v) for v in row) for row in answer.get("rows", [])]
    return "\n".join(lines) + "\n"


def error_message(status: int | None, body: str) -> str:
    """What the query server (or the API server's proxy) said, in one line."""
    try:
        found = json.loads(body)
    except (json.JSONDecodeError, TypeError):
        found = None
    if isinstance(found, dict):
        error = found.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if found.get("message"):  # a Status from the API server
            return str(found["message"])
    return f"HTTP {status}: {(body or '').strip()[:300]}"


async def ask_agent(name: str, question: str, namespace: str) -> tuple[str, dict[str, Any]]:
    """The agent that answered and its answer. PluginError when there is none or it refused."""
    async with cluster() as kube:
        listed = await kube.list_objects(API_VERSION, "QueryAgent", namespace)
        try:
            agents = [QueryAgent.model_validate(i) for i in listed]
        except ValidationError as e:
            raise CommandError(f"a QueryAgent does not match this duet: {e}", EXIT_API) from None
        agent = resolve_agent(name, agents, namespace)
        response = await kube.request(
            "POST",
            proxy_path(agent, namespace, "v1/ask"),
            body={"question": question},
            timeout=ASK_TIMEOUT_SECONDS,
        )
        status, text = response.status_code, response.text
    if not 200 <= status < 300:
        # 403 and 422 come from the agent: it cannot answer that; else it is unreachable.
        code = EXIT_UNANSWERED if status in (403, 422) else EXIT_API
        raise CommandError(f"QueryAgent {agent.metadata.name}: {error_message(status, text)}", code)
    return agent.metadata.name, json.loads(text)


def backup_object(
    platform: str,
    now: datetime,
    components: Sequence[BackupComponent] = (),
    deletion_policy: BackupDeletionPolicy = BackupDeletionPolicy.RETAIN,
) -> DataPlatformBackup:
    """A DataPlatformBackup of `platform` named for the moment it was asked for (as
    `kubectl cnpg backup` names its Backups); the platform's own target unless it is set."""
    spec: dict[str, Any] = {"platformRef": {"name": platform}, "deletionPolicy": deletion_policy}
    if components:
        spec["components"] = sorted(set(components))
    return DataPlatformBackup.model_validate(
        {"metadata": {"name": f"{platform}-{now:%Y%m%d%H%M%S}"}, "spec": spec}
    )


async def create_backup(backup: DataPlatformBackup, namespace: str) -> None:
    async with cluster() as kube:
        platform = backup.spec.platform_ref.name
        await get_custom(kube, "DataPlatform", platform, namespace, missing=EXIT_USAGE)
        try:
            await kube.create(backup.wire(), namespace)
        except KindMissingError:
            raise CommandError(
                "the DataPlatformBackup kind is not installed in this cluster"
                " (kubectl apply -f crds/, or upgrade the chart)",
                EXIT_API,
            ) from None


@app.callback()
def main() -> None:
    """Duet's data platforms from kubectl."""


@app.command()
def version() -> None:
    """Print Duet's version."""
    typer.echo(__version__)


@app.command("ask")
def ask(
    name: Annotated[str, typer.Argument(help="A QueryAgent, or the DataPlatform it serves.")],
    question: Annotated[str, typer.Argument(help="The question, in plain English.")],
    namespace: NamespaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The answer as JSON.")] = False,
) -> None:
    """Ask a platform's QueryAgent a question; answered read-only."""
    where = namespace or current_namespace()
    agent, answer = run(ask_agent(name, question, where), api_error=EXIT_API)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        typer.echo(render_answer(agent, answer), nl=False)


@app.command("backup")
def backup(
    name: Annotated[str, typer.Argument(help="The DataPlatform to back up.")],
    namespace: NamespaceOption = None,
    component: Annotated[
        list[BackupComponent] | None,
        typer.Option("--component", help="Only this one (repeatable); default: all."),
    ] = None,
    deletion_policy: Annotated[
        BackupDeletionPolicy,
        typer.Option(
            "--deletion-policy",
            help="Delete: deleting the backup later deletes its data too. Fixed once made.",
        ),
    ] = BackupDeletionPolicy.RETAIN,
) -> None:
    """Back a platform up now: creates a DataPlatformBackup, which the operator runs."""
    where = namespace or current_namespace()
    made = backup_object(name, datetime.now(UTC), component or (), deletion_policy)
    run(create_backup(made, where), api_error=EXIT_API)
    typer.echo(
        f"dataplatformbackup {made.metadata.name} created; "
        f"follow it with: kubectl get dataplatformbackup {made.metadata.name} -n {where}"
    )


app.command("status")(status)
app.command("approve")(approve)
# `duet plan` as it stands: same options, output and exit codes.
app.command("plan")(plan)
