"""The four operation commands: ``popbatch capture|cancel|reauthorize|authorize FILE``.

Each reads and validates the file, shows the invalid rows or the notices,
and hands the batch to ``pipeline.run_batch`` with the hooks that ask the
questions and draw the progress; then it prints the run's summary and
returns the exit code. pandas is imported only once the options and the
key have passed, so that a refusal comes at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from popbatch.cli import output
from popbatch.cli.options import build_run_options, run_options
from popbatch.config import RunOptions, load_server_key
from popbatch.errors import ExitCode, OutputError, UsageError, combine_exit_codes

_RUN_HELP = """

FILE is a CSV (UTF-8, UTF-8 with BOM, UTF-16, CP932) or Excel workbook
(.xlsx, .xlsm). Every row is validated before anything is sent; the
results go to a folder of their own under --out. Re-running the same
command resumes the batch and never sends a row twice.

Exit codes: 0 all succeeded, 1 some failed or rejected, 3 some in Review,
65 input refused, 75 try again later; the README lists them all.
"""


def operation_command(name: str, summary: str) -> click.Command:
    """The command ``popbatch NAME FILE`` for one of the four operations."""

    @click.command(name=name, help=summary + _RUN_HELP, short_help=summary)
    @run_options
    @click.pass_context
    def command(ctx: click.Context, /, **values: Any) -> None:
        ctx.exit(int(_run(name, values)))

    return command


COMMANDS = (
    operation_command("capture", "Capture authorised orders (card-capture)."),
    operation_command(
        "cancel", "Cancel orders or refund them, fully or in part (card-cancel)."
    ),
    operation_command(
        "reauthorize", "Charge again with an earlier order's card (card-reauthorize)."
    ),
    operation_command("authorize", "Charge stored PayNowID cards (card-authorize)."),
)


def _run(operation: str, values: dict[str, Any]) -> ExitCode:
    """Run one operation command and return its exit code."""
    output.setup_logging(values["verbose"], values["quiet"], values["log_file"])
    # Refused before the key or the file is read: cron must not get further.
    asks = values["live"] and not values["yes"] and not values["dry_run"]
    if asks and not output.stdin_is_terminal():
        raise UsageError(
            "a live run needs a terminal to confirm it, or --yes",
            hint="From cron, add --yes (check the file first with --dry-run).",
        )
    options = build_run_options(operation, values)
    if options.dry_run:
        return _dry_run(options)
    key = load_server_key(values["server_key_file"], os.environ)

    # Imported late: pandas takes seconds to load, and a refusal above should
    # not wait for it.
    from popbatch import pipeline

    validation = pipeline.read_and_validate(
        pipeline.operation_named(operation),
        options.input_path,
        options.read,
        live=options.live,
    )
    output.echo_notices(validation.notices, options.quiet)
    if validation.rejected and not options.skip_invalid:
        _refuse(validation, options.out_dir)

    stop = pipeline.StopSignal()
    progress = output.Progress(quiet=options.quiet)
    # A live run that asks shows the notices (a new journal) with its
    # question; one that ends before asking shows them when it ends, as
    # --quiet does when the run did not exit 0.
    notices = output.Notices(quiet=options.quiet, deferred=asks)

    def confirm(confirmation: Any) -> bool:
        notices.taken()
        return output.confirm_live(confirmation, options.quiet)

    hooks = pipeline.RunHooks(
        confirm=confirm,
        notice=notices.add,
        confirm_resend=lambda count: options.yes or output.confirm_resend(count),
        started=progress.start,
        row_done=progress.row_done,
    )
    # The handlers stay until the summary is out: a signal while it prints
    # stops the run as cleanly as one during the sending (exit 130 or 143).
    with output.stop_on_signals(stop):
        failed = True
        try:
            result = pipeline.run_batch(
                options, key, hooks, stop, validation=validation
            )
            failed = result.exit_code is not ExitCode.OK
        finally:
            progress.close()
            notices.flush(failed=failed)
        if not (options.quiet and result.exit_code is ExitCode.OK):
            for line in result.lines:
                click.echo(line, err=True)

    # A signal after the batch's exit code was settled (while the results
    # were written or the summary printed) still says how the run ended.
    if stop.exit_code is None:
        return result.exit_code
    return combine_exit_codes([result.exit_code, stop.exit_code])


def _dry_run(options: RunOptions) -> ExitCode:
    """Preview a run: no key, nothing sent; exit 0, or 65 when refused."""
    from popbatch import pipeline

    # The notices of the run (no journal) come after those of the input.
    notices = output.Notices(quiet=options.quiet, deferred=True)
    failed = True
    try:
        preview = pipeline.dry_run(options, pipeline.RunHooks(notice=notices.add))
        output.echo_notices(preview.validation.notices, options.quiet)
        failed = preview.exit_code is not ExitCode.OK
    finally:
        notices.flush(failed=failed)
    if preview.validation.rejected and not options.skip_invalid:
        _refuse(preview.validation, options.out_dir)
    if not (options.quiet and preview.exit_code is ExitCode.OK):
        for line in preview.lines:
            click.echo(line, err=True)
    return preview.exit_code


def _refuse(validation: Any, out_dir: Path) -> None:
    """Show the invalid rows, write them to a file, and refuse the run (65)."""
    from popbatch import pipeline

    output.echo_problem_table(validation, err=True)
    try:
        written = pipeline.write_rejected(validation, out_dir)
    except OutputError as error:
        click.echo(f"Note: {error.message}", err=True)
    else:
        click.echo(f"Rejected rows: {written}", err=True)
    pipeline.refuse_invalid(validation)
