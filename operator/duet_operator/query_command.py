"""`duet query serve`: the query server a QueryAgent's Deployment runs.

Settings come from `DUET_QUERY_*` (see duet_agents.query.settings), which the operator renders
into the Deployment; `--database` and `--port` override them for a run on a laptop.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

query_app = typer.Typer(
    help="Serve read-only questions and SQL over a database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

EXIT_USAGE = 2


@query_app.callback()
def query() -> None:
    """Serve read-only questions and SQL over a database."""


@query_app.command("serve")
def serve(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="chdb:///path, clickhouse://..., postgresql://... (or DUET_QUERY_DATABASE_URL)",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",  # noqa: S104 - a pod's server
    port: Annotated[int | None, typer.Option(help="Port (else DUET_QUERY_PORT, 8080).")] = None,
) -> None:
    """Serve /v1/sql, /v1/schema, /healthz and /metrics until interrupted."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server stack

    from duet_agents.query.server import create_app  # noqa: PLC0415
    from duet_agents.query.settings import QueryServerSettings  # noqa: PLC0415

    overrides: dict[str, Any] = {}
    if database is not None:
        overrides["database_url"] = database
    if port is not None:
        overrides["port"] = port
    try:
        settings = QueryServerSettings(**overrides)
    except ValidationError as e:
        fields = "; ".join(
            f"DUET_QUERY_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in e.errors(include_url=False)
        )
        typer.echo(f"duet: {fields}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    uvicorn.run(create_app(settings), host=host, port=settings.port, log_level="info")
