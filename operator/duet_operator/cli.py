"""The `duet` command line.

Scripts and CI depend on its commands and exit codes (../shared/DESIGN.md, "The command line
contract"); keep them stable.
"""

from __future__ import annotations

import typer

from duet_operator import __version__

app = typer.Typer(
    name="duet",
    help="Design, provision, heal and query analytics data platforms on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Design, provision, heal and query analytics data platforms on Kubernetes."""


@app.command()
def version() -> None:
    """Print Duet's version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
