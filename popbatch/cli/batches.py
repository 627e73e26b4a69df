"""The commands around the batches: validate a file, list, rebuild and settle batches.

``validate`` checks a file and sends nothing; ``status``, ``report`` and
``resolve`` read (and, for resolve, settle rows of) the journal that the
runs wrote. pandas and the journal are imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from popbatch.cli import output
from popbatch.cli.options import (
    config_option,
    csv_encoding_option,
    encoding_option,
    journal_options,
    logging_options,
    settings_from,
    sheet_option,
)
from popbatch.config import ReadOptions
from popbatch.errors import ExitCode, UsageError


@click.command(short_help="Check FILE for OPERATION; send nothing (exit 0 or 65).")
@click.argument(
    "operation", type=click.Choice(["capture", "cancel", "reauthorize", "authorize"])
)
@click.argument("file", type=click.Path(path_type=Path))
@sheet_option
@encoding_option
@click.option(
    "--live",
    is_flag=True,
    help="Validate for a live run (a dummy column must say false).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Folder under which the rejected rows file is written. "
    "[config out; default: ./popbatch-results]",
)
@config_option
@logging_options
@click.pass_context
def validate(
    ctx: click.Context,
    operation: str,
    file: Path,
    sheet: str | None,
    encoding: str | None,
    live: bool,
    out: Path | None,
    config: Path | None,
    verbose: int,
    quiet: bool,
    log_file: Path | None,
) -> None:
    """Check FILE for OPERATION without sending anything (exit 0 or 65).

    Prints a table of the problems (row, column, value, problem) on stdout
    and writes the invalid rows, as read, with their problems, to
    rejected.csv in a folder under --out.
    """
    from popbatch import pipeline

    output.setup_logging(verbose, quiet, log_file)
    out_dir = settings_from({"out": out, "config": config}).out
    validation = pipeline.read_and_validate(
        pipeline.operation_named(operation),
        file,
        ReadOptions(sheet=sheet, encoding=encoding),
        live=live,
    )
    output.echo_notices(validation.notices, quiet)
    total = len(validation.table.cells)
    rejected = len(validation.rejected)
    described = pipeline.describe_input(validation)
    if rejected:
        output.echo_problem_table(validation, err=False)
        written = pipeline.write_rejected(validation, out_dir)
        click.echo(
            f"{file.name}: {output.row_count(total)}, {total - rejected:,} valid, "
            f"{rejected:,} rejected ({described})",
            err=True,
        )
        click.echo(f"Rejected rows: {written}", err=True)
        ctx.exit(int(ExitCode.INPUT_REFUSED))
    if not quiet:
        click.echo(
            f"{file.name}: {output.row_count(total)}, all valid ({described})", err=True
        )
    ctx.exit(int(ExitCode.OK))


@click.command(short_help="List batches and their rows per result group.")
@click.argument("batch", type=int, required=False)
@journal_options
def status(batch: int | None, journal: Path | None, config: Path | None) -> None:
    """List batches and their rows per result group (or one BATCH in detail)."""
    from popbatch import batches

    path = settings_from({"journal": journal, "config": config}).journal
    for line in batches.status_lines(path, batch):
        click.echo(line)


@click.command()
@click.argument("batch", type=int)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Folder under which the results folder is rebuilt. "
    "[config out; default: ./popbatch-results]",
)
@csv_encoding_option
@journal_options
def report(
    batch: int,
    out: Path | None,
    csv_encoding: str,
    journal: Path | None,
    config: Path | None,
) -> None:
    """Rebuild BATCH's results folder from the journal alone."""
    from popbatch import batches

    settings = settings_from({"out": out, "journal": journal, "config": config})
    folder = batches.rebuild_results(
        settings.journal, batch, settings.out, csv_encoding=csv_encoding
    )
    click.echo(str(folder))


@click.command(short_help="Settle Review rows after checking the merchant portal.")
@click.argument("batch", type=int)
@click.argument("order_id", required=False)
@click.option(
    "--succeeded", is_flag=True, help="POP applied it (checked in the portal)."
)
@click.option("--failed", is_flag=True, help="POP did not apply it.")
@click.option("--note", metavar="TEXT", help="Why: what the merchant portal showed.")
@click.option(
    "--file",
    "from_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="A CSV of order_id,outcome,note lines to settle many rows at once.",
)
@journal_options
def resolve(
    batch: int,
    order_id: str | None,
    succeeded: bool,
    failed: bool,
    note: str | None,
    from_file: Path | None,
    journal: Path | None,
    config: Path | None,
) -> None:
    """Settle a Review row of BATCH after checking it in the merchant portal.

    A row settled as failed is sent by the next run of its batch; one
    settled as succeeded is done.
    """
    from popbatch import batches

    # Two flags, not one value: a command naming both must not settle the
    # row as whichever came last.
    if succeeded and failed:
        raise UsageError("give --succeeded or --failed, not both")
    outcome = "succeeded" if succeeded else "failed" if failed else None
    if from_file is None and (order_id is None or outcome is None or not note):
        raise UsageError(
            "give ORDER_ID with --succeeded or --failed and --note, or --file",
            hint="Example: popbatch resolve 12 ORD-0042 --failed --note 'not in portal'",
        )
    path = settings_from({"journal": journal, "config": config}).journal
    for line in batches.resolve_rows(
        path,
        batch,
        order_id=order_id,
        outcome=outcome,
        note=note,
        from_file=from_file,
    ):
        click.echo(line)


COMMANDS = (validate, status, report, resolve)
