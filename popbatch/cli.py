"""The command line: options in, one pipeline call, a message and an exit code out.

This is the only module that imports click, prints, or exits.
"""

from __future__ import annotations

import click

from popbatch import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="popbatch")
def main() -> None:
    """Bulk VeriTrans4G POP card operations from CSV and Excel files."""


# --- sandbox command: owned by the sandbox work (issue 3) -------------------
@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=int,
    help="Port (0 picks a free one).",
)
def sandbox(host: str, port: int) -> None:
    """Serve a local POP simulator for tests and demos."""
    raise click.ClickException("the sandbox is not built yet")


# --- end of sandbox command --------------------------------------------------
