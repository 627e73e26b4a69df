"""The command line: options in, one pipeline call, a message and an exit code out.

This is the only module that imports click, prints, or exits. Errors from
the rest of popbatch arrive as PopbatchError and leave as one ``Error:`` line,
an optional hint line, and DESIGN.md's exit code; a traceback only with
``--debug``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from popbatch import __version__
from popbatch.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENDPOINT,
    DEFAULT_OUT,
    DEFAULT_RATE,
    ControlTotals,
    ReadOptions,
    RetrySettings,
    RunOptions,
    Timeouts,
    default_journal_path,
    environ_defaults,
    load_config_file,
    load_server_key,
    parse_amount_option,
)
from popbatch.errors import ExitCode, PopbatchError, UsageError

logger = logging.getLogger("popbatch")

F = TypeVar("F", bound=Callable[..., Any])

_debug = False


class PopbatchGroup(click.Group):
    """A click group that turns PopbatchError into a message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except PopbatchError as error:
            if _debug:
                raise
            click.echo(f"Error: {error.message}", err=True)
            if error.hint:
                click.echo(error.hint, err=True)
            ctx.exit(int(error.exit_code))
        except KeyboardInterrupt:
            if _debug:
                raise
            click.echo("Interrupted.", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except Exception:
            # A bug, not a user error: say so in one line unless --debug.
            if _debug:
                raise
            kind = sys.exc_info()[0]
            name = kind.__name__ if kind else "error"
            click.echo(
                f"Error: popbatch failed unexpectedly ({name}); nothing more was sent.",
                err=True,
            )
            click.echo("Run again with --debug for the traceback.", err=True)
            ctx.exit(70)


@click.group(
    cls=PopbatchGroup, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="popbatch")
def main() -> None:
    """Bulk VeriTrans4G POP card operations from CSV and Excel files.

    Test mode is the default: every request carries dummy true unless
    --live is given. Exit codes are listed in the README.
    """


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    global _debug
    _debug = _debug or value
    return value


def logging_options(function: F) -> F:
    """Options every command shares: verbosity, log file, debug."""
    options = [
        click.option(
            "-v",
            "--verbose",
            count=True,
            help="Log row outcomes on stderr (-vv: debug).",
        ),
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            help="Print nothing when all went well (for cron).",
        ),
        click.option(
            "--log-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Append one key=value line per row outcome to this file.",
        ),
        click.option(
            "--debug",
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_set_debug,
            help="Show tracebacks for unexpected errors.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def setup_logging(verbose: int, quiet: bool, log_file: Path | None) -> None:
    """Send popbatch's log records to stderr and, when asked, to a file."""
    root = logging.getLogger("popbatch")
    # A second command in the same process (tests) must not leak the
    # previous log file's handle; closing a stderr handler leaves stderr open.
    for previous in root.handlers:
        previous.close()
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    root.propagate = False
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")

    console = logging.StreamHandler(sys.stderr)
    if verbose >= 2:
        console.setLevel(logging.DEBUG)
    elif verbose == 1:
        console.setLevel(logging.INFO)
    else:
        console.setLevel(logging.ERROR if quiet else logging.WARNING)
    console.setFormatter(formatter)
    root.addHandler(console)

    if log_file is not None:
        handler = _owner_only_file_handler(log_file)
        handler.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
        handler.setFormatter(formatter)
        root.addHandler(handler)


def _owner_only_file_handler(path: Path) -> logging.FileHandler:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        return logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot open the log file {str(path)!r}: {exc.strerror}"
        ) from None


def run_options(function: F) -> F:
    """The options of the four operation commands (capture, cancel, ...)."""
    options = [
        click.argument("file", type=click.Path(path_type=Path)),
        click.option(
            "--endpoint",
            metavar="URL",
            help=f"POP base URL; the operation's path is appended. [env POP_ENDPOINT; default {DEFAULT_ENDPOINT}]",
        ),
        click.option(
            "--server-key-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Read the server key from this file (mode 600). Otherwise POP_SERVER_KEY.",
        ),
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            help=f"Folder under which each run writes a folder of its own. [default {DEFAULT_OUT}]",
        ),
        click.option(
            "--sheet", metavar="NAME", help="Excel sheet to read. [default: the first]"
        ),
        click.option(
            "--encoding",
            metavar="NAME",
            help="CSV encoding: utf-8, utf-8-sig, utf-16, cp932 (also shift_jis). [default: detected]",
        ),
        click.option(
            "--live",
            is_flag=True,
            help="Send dummy false: real money moves. Asks first.",
        ),
        click.option(
            "--yes", is_flag=True, help="Do not ask before a live run (for cron)."
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            help="Read, validate and plan; write a preview of the requests; send nothing.",
        ),
        click.option(
            "--skip-invalid",
            is_flag=True,
            help="Send the valid rows even when others are invalid (listed in Rejected).",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0),
            help=f"Requests per second over all workers; 0 for no limit. [default {DEFAULT_RATE:g}]",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1, max=64),
            help=f"Requests in flight at once. [default {DEFAULT_CONCURRENCY}]",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=Timeouts().read,
            show_default=True,
            help="Seconds to wait for an answer before the row goes to Review.",
        ),
        click.option(
            "--connect-timeout",
            type=click.FloatRange(min=0.1),
            default=Timeouts().connect,
            show_default=True,
            help="Seconds to wait for a connection (nothing is sent before).",
        ),
        click.option(
            "--max-retry-wait",
            type=click.FloatRange(min=0),
            default=RetrySettings().retry_after_ceiling,
            show_default=True,
            help="Longest Retry-After popbatch waits; a longer one stops the batch (exit 75).",
        ),
        click.option(
            "--stop-after",
            type=click.IntRange(min=1),
            default=RetrySettings().stop_after_consecutive,
            show_default=True,
            help="Stop the batch after this many answers in a row that say nothing "
            "was sent or processed, or this many in a row whose outcome is unknown.",
        ),
        click.option(
            "--journal",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Journal file. [env POPBATCH_JOURNAL; default ~/.local/state/popbatch/journal.sqlite3]",
        ),
        click.option(
            "--resend-unknown",
            is_flag=True,
            help="Send again the rows in Review of this batch (asks first).",
        ),
        click.option(
            "--allow-repeat",
            is_flag=True,
            help="Send a partial refund that repeats an earlier one (same order, same amount).",
        ),
        click.option(
            "--csv-encoding",
            type=click.Choice(["utf-8-sig", "cp932"]),
            default="utf-8-sig",
            show_default=True,
            help="Encoding of the result CSV files.",
        ),
        click.option(
            "--max-total", metavar="AMOUNT", help="Refuse a run whose rows total more."
        ),
        click.option(
            "--expect-rows",
            type=click.IntRange(min=0),
            help="Refuse a run unless exactly N rows would be sent.",
        ),
        click.option(
            "--expect-total",
            metavar="AMOUNT",
            help="Refuse a run unless the rows total exactly this.",
        ),
        click.option(
            "--config",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Settings file. [default ./popbatch.toml when present]",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return logging_options(function)


def build_run_options(operation: str, values: dict[str, Any]) -> RunOptions:
    """Merge command line, environment, config file and defaults (in that order)."""
    settings: dict[str, Any] = {
        "endpoint": DEFAULT_ENDPOINT,
        "rate": DEFAULT_RATE,
        "concurrency": DEFAULT_CONCURRENCY,
        "journal": str(default_journal_path(os.environ)),
        "out": str(DEFAULT_OUT),
    }
    settings.update(load_config_file(values["config"], Path.cwd()))
    settings.update(environ_defaults(os.environ))
    for name in ("endpoint", "rate", "concurrency", "journal", "out"):
        if values.get(name) is not None:
            settings[name] = values[name]

    return RunOptions(
        operation=operation,
        input_path=values["file"],
        endpoint=str(settings["endpoint"]),
        out_dir=Path(settings["out"]),
        journal_path=Path(settings["journal"]).expanduser(),
        read=ReadOptions(sheet=values["sheet"], encoding=values["encoding"]),
        live=values["live"],
        yes=values["yes"],
        dry_run=values["dry_run"],
        skip_invalid=values["skip_invalid"],
        resend_unknown=values["resend_unknown"],
        allow_repeat=values["allow_repeat"],
        rate=float(settings["rate"]),
        concurrency=int(settings["concurrency"]),
        timeouts=Timeouts(connect=values["connect_timeout"], read=values["timeout"]),
        retry=RetrySettings(
            retry_after_ceiling=values["max_retry_wait"],
            stop_after_consecutive=values["stop_after"],
        ),
        totals=ControlTotals(
            max_total=_amount(values["max_total"], "--max-total"),
            expect_rows=values["expect_rows"],
            expect_total=_amount(values["expect_total"], "--expect-total"),
        ),
        csv_encoding=values["csv_encoding"],
        quiet=values["quiet"],
    )


def _amount(text: str | None, option: str) -> int | None:
    return None if text is None else parse_amount_option(text, option)


# --- operation commands ------------------------------------------------------


def _operation_command(name: str, summary: str) -> None:
    """Register ``popbatch NAME FILE`` for one of the four operations."""

    @main.command(name=name, help=summary + _RUN_HELP)
    @run_options
    @click.pass_context
    def command(ctx: click.Context, /, **values: Any) -> None:
        ctx.exit(int(_run(name, values)))


_RUN_HELP = """

FILE is a CSV (UTF-8, UTF-8 with BOM, UTF-16, CP932) or Excel workbook
(.xlsx, .xlsm). Every row is validated before anything is sent; the
results go to a folder of their own under --out. Re-running the same
command resumes the batch and never sends a row twice.
"""

_operation_command("capture", "Capture authorised orders (card-capture).")
_operation_command(
    "cancel", "Cancel orders or refund them, fully or in part (card-cancel)."
)
_operation_command(
    "reauthorize", "Charge again with an earlier order's card (card-reauthorize)."
)
_operation_command("authorize", "Charge stored PayNowID cards (card-authorize).")


def _run(operation: str, values: dict[str, Any]) -> ExitCode:
    """Run one operation command and return its exit code."""
    from popbatch import pipeline

    setup_logging(values["verbose"], values["quiet"], values["log_file"])
    options = build_run_options(operation, values)
    if options.dry_run:
        return _dry_run(options)
    if options.live and not options.yes and not sys.stdin.isatty():
        raise UsageError(
            "a live run needs a terminal to confirm it, or --yes",
            hint="From cron, add --yes after checking the file with --dry-run.",
        )
    key = load_server_key(values["server_key_file"], os.environ)

    validation = pipeline.read_and_validate(
        pipeline.operation_named(operation),
        options.input_path,
        options.read,
        live=options.live,
    )
    _echo_notices(validation.notices, options.quiet)
    if validation.rejected and not options.skip_invalid:
        _echo_problem_table(validation)
        pipeline.refuse_invalid(validation)

    stop = pipeline.StopSignal()
    progress = Progress(quiet=options.quiet)
    hooks = pipeline.RunHooks(
        confirm=_confirm_live,
        confirm_resend=lambda count: options.yes or _confirm_resend(count),
        started=progress.start,
        row_done=progress.row_done,
    )
    with _signals_stop(stop):
        try:
            result = pipeline.run_batch(
                options, key, hooks, stop, validation=validation
            )
        finally:
            progress.close()

    if not (options.quiet and result.exit_code is ExitCode.OK):
        for line in result.lines:
            click.echo(line, err=True)
    return result.exit_code


def _dry_run(options: RunOptions) -> ExitCode:
    from popbatch import pipeline

    preview = pipeline.dry_run(options)
    _echo_notices(preview.validation.notices, options.quiet)
    if preview.validation.rejected and not options.skip_invalid:
        _echo_problem_table(preview.validation)
    for line in preview.lines:
        click.echo(line, err=True)
    return preview.exit_code


def _confirm_live(confirmation: Any) -> bool:
    """Ask before a live run: rows, total and, loudly, any full refunds."""
    click.echo(
        f"LIVE {confirmation.operation}: {confirmation.rows:,} rows, "
        f"total {confirmation.total:,} yen, to {confirmation.endpoint}",
        err=True,
    )
    if confirmation.full_refunds:
        rows = ", ".join(str(row) for row in confirmation.full_refunds[:20])
        more = len(confirmation.full_refunds) - 20
        click.echo(
            f"WARNING: {len(confirmation.full_refunds):,} rows have no amount and will "
            f"refund the FULL amount (rows {rows}{f' and {more} more' if more > 0 else ''})",
            err=True,
        )
    if confirmation.yes:
        return True
    return click.confirm(
        "Send these requests with real money?", default=False, err=True
    )


def _confirm_resend(count: int) -> bool:
    click.echo(
        f"{count:,} rows of this batch are in Review: they may already have been "
        "applied at POP. Sending them again can charge or refund twice.",
        err=True,
    )
    if not sys.stdin.isatty():
        raise UsageError("--resend-unknown needs a terminal to confirm, or --yes")
    return click.confirm("Send them again?", default=False, err=True)


def _echo_notices(notices: Sequence[str], quiet: bool) -> None:
    if quiet:
        return
    for notice in notices:
        click.echo(f"Note: {notice}", err=True)


_TABLE_LIMIT = 50


def _echo_problem_table(validation: Any) -> None:
    """Print the invalid rows as a short table: row, column, value, problem."""
    from popbatch.pipeline import problem_rows

    lines = problem_rows(validation)
    click.echo(f"{'row':>7}  {'column':<18} {'value':<20} problem")
    for row, column, value, message in lines[:_TABLE_LIMIT]:
        click.echo(f"{row:>7}  {column[:18]:<18} {value[:20]:<20} {message}")
    if len(lines) > _TABLE_LIMIT:
        click.echo(
            f"... and {len(lines) - _TABLE_LIMIT:,} more problems (see the rejected file)"
        )


class Progress:
    """Progress on stderr: a bar on a terminal, else a line every 10% or minute."""

    def __init__(self, *, quiet: bool) -> None:
        self._quiet = quiet
        self._tty = sys.stderr.isatty()
        self._bar: Any = None
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._failed = 0
        self._review = 0
        self._next_share = 0.1
        self._started = time.monotonic()
        self._last_line = self._started

    def start(self, total: int) -> None:
        """A run is about to send ``total`` rows."""
        self._total = total
        self._started = self._last_line = time.monotonic()
        if self._quiet:
            return
        if self._tty:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, unit="row", file=sys.stderr, dynamic_ncols=True
            )
        else:
            click.echo(f"sending {total:,} rows", err=True)

    def row_done(self, row: Any, outcome: Any) -> None:
        """One row is done for this run (called from worker threads)."""
        with self._lock:
            self._done += 1
            if row.state.value == "failed":
                self._failed += 1
            elif row.state.value == "unknown":
                self._review += 1
            if self._quiet:
                return
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix(
                    failed=self._failed, review=self._review, refresh=False
                )
                return
            now = time.monotonic()
            share = self._done / self._total if self._total else 1.0
            if share >= self._next_share or now - self._last_line >= 60:
                while self._next_share <= share:
                    self._next_share += 0.1
                self._last_line = now
                rate = self._done / max(now - self._started, 1e-9)
                click.echo(
                    f"{self._done:,}/{self._total:,} rows ({share:.0%}), {rate:.1f}/s, "
                    f"{self._failed:,} failed, {self._review:,} in Review",
                    err=True,
                )

    def close(self) -> None:
        """Finish the bar, if one was shown."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def _signals_stop(stop: Any) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run cleanly; a second SIGINT aborts at once."""
    seen: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        if seen and signum == signal.SIGINT:
            # The journal is consistent at every commit; an aborted
            # transaction is rolled back when the file is next opened. A raw
            # write: the interrupted code may hold stderr's buffer.
            os.write(
                2,
                b"SIGINT again: stopped at once. Rows in flight go to Review when "
                b"the same command runs again.\n",
            )
            os._exit(int(ExitCode.INTERRUPTED))
        seen.append(signum)
        code = ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED
        stop.request(
            code, f"stopped by {signal.Signals(signum).name}; the same command resumes"
        )
        click.echo(
            f"{signal.Signals(signum).name}: finishing the requests in flight, then "
            "writing the results (press Ctrl-C again to abort at once)",
            err=True,
        )

    previous = {
        sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- validate, status, report, resolve ---------------------------------------


@main.command()
@click.argument(
    "operation", type=click.Choice(["capture", "cancel", "reauthorize", "authorize"])
)
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--sheet", metavar="NAME", help="Excel sheet to read. [default: the first]"
)
@click.option("--encoding", metavar="NAME", help="CSV encoding. [default: detected]")
@click.option(
    "--live",
    is_flag=True,
    help="Validate for a live run (a dummy column must say false).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Where the rejected rows file is written.",
)
@logging_options
@click.pass_context
def validate(
    ctx: click.Context,
    operation: str,
    file: Path,
    sheet: str | None,
    encoding: str | None,
    live: bool,
    out: Path,
    verbose: int,
    quiet: bool,
    log_file: Path | None,
) -> None:
    """Check FILE for OPERATION without sending anything (exit 0 or 65)."""
    from popbatch import pipeline

    setup_logging(verbose, quiet, log_file)
    validation = pipeline.read_and_validate(
        pipeline.operation_named(operation),
        file,
        ReadOptions(sheet=sheet, encoding=encoding),
        live=live,
    )
    _echo_notices(validation.notices, quiet)
    total = len(validation.table.cells)
    rejected = len(validation.rejected)
    described = pipeline.describe_input(validation)
    if rejected:
        _echo_problem_table(validation)
        written = pipeline.write_rejected(validation, out)
        click.echo(
            f"{file.name}: {total:,} rows, {total - rejected:,} valid, {rejected:,} rejected "
            f"({described})",
            err=True,
        )
        click.echo(f"Rejected rows: {written}", err=True)
        ctx.exit(int(ExitCode.INPUT_REFUSED))
    if not quiet:
        click.echo(f"{file.name}: {total:,} rows, all valid ({described})", err=True)
    ctx.exit(int(ExitCode.OK))


def _journal_option(function: F) -> F:
    return click.option(
        "--journal",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Journal file. [env POPBATCH_JOURNAL; default ~/.local/state/popbatch/journal.sqlite3]",
    )(function)


def _journal_path(given: Path | None) -> Path:
    if given is not None:
        return given
    found = environ_defaults(os.environ).get("journal")
    return Path(found) if found else default_journal_path(os.environ)


@main.command()
@click.argument("batch", type=int, required=False)
@_journal_option
def status(batch: int | None, journal: Path | None) -> None:
    """List batches and their rows per state (or one BATCH in detail)."""
    from popbatch import batches

    for line in batches.status_lines(_journal_path(journal), batch):
        click.echo(line)


@main.command()
@click.argument("batch", type=int)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Folder under which the results folder is rebuilt.",
)
@click.option(
    "--csv-encoding",
    type=click.Choice(["utf-8-sig", "cp932"]),
    default="utf-8-sig",
    show_default=True,
)
@_journal_option
def report(batch: int, out: Path, csv_encoding: str, journal: Path | None) -> None:
    """Rebuild BATCH's results folder from the journal alone."""
    from popbatch import batches

    folder = batches.rebuild_results(
        _journal_path(journal), batch, out, csv_encoding=csv_encoding
    )
    click.echo(str(folder))


@main.command()
@click.argument("batch", type=int)
@click.argument("order_id", required=False)
@click.option(
    "--succeeded",
    "outcome",
    flag_value="succeeded",
    help="POP applied it (checked in the portal).",
)
@click.option("--failed", "outcome", flag_value="failed", help="POP did not apply it.")
@click.option("--note", help="Why: what the merchant portal showed.")
@click.option(
    "--file",
    "from_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A CSV of order_id,outcome,note lines to settle many rows at once.",
)
@_journal_option
def resolve(
    batch: int,
    order_id: str | None,
    outcome: str | None,
    note: str | None,
    from_file: Path | None,
    journal: Path | None,
) -> None:
    """Settle a Review row of BATCH after checking it in the merchant portal."""
    from popbatch import batches

    if from_file is None and (order_id is None or outcome is None or not note):
        raise UsageError(
            "give ORDER_ID with --succeeded or --failed and --note, or --file",
            hint="Example: popbatch resolve 12 ORD-0042 --failed --note 'not in portal'",
        )
    for line in batches.resolve_rows(
        _journal_path(journal),
        batch,
        order_id=order_id,
        outcome=outcome,
        note=note,
        from_file=from_file,
    ):
        click.echo(line)


# --- sandbox command: owned by the sandbox work (issue 3) -------------------
# Command-line rate option -> popbatch.sandbox.Faults field.
_SANDBOX_RATES = {
    "fault_429": ("too_many_requests", "HTTP 429 with Retry-After; not applied."),
    "fault_503": ("unavailable", "HTTP 503 with Retry-After; not applied."),
    "fault_200_html": (
        "maintenance_html",
        "HTTP 200 with an HTML maintenance page; not applied.",
    ),
    "fault_close_before": (
        "close_before_apply",
        "Read the request, close without answering; not applied.",
    ),
    "fault_ra01": ("ra01", "RA01 without m_status (not processed)."),
    "fault_rd01": ("rd01", "RD01 without m_status (not processed)."),
    "fault_rm01": ("rm01", "RM01 without m_status (not processed)."),
    "fault_502_html": (
        "bad_gateway_html",
        "Apply, then answer HTTP 502 with an HTML page.",
    ),
    "fault_truncate": (
        "truncated_body",
        "Apply, then send half of the answer's body and close.",
    ),
    "fault_close_after": ("close_after_apply", "Apply, then close without answering."),
    "fault_hang": ("hang", "Apply, then never answer (until the client gives up)."),
}


def _sandbox_options(function: F) -> F:
    """The options of ``popbatch sandbox``: where, what, and which faults."""
    rate = click.FloatRange(0.0, 1.0)
    seconds = click.FloatRange(min=0.0)
    file = click.Path(dir_okay=False, path_type=Path)
    options = [
        click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help="Address to listen on.",
        ),
        click.option(
            "--port",
            default=8080,
            show_default=True,
            type=click.IntRange(0, 65535),
            help="Port (0 picks a free one).",
        ),
        click.option(
            "--port-file",
            type=file,
            help="Write the port here once listening (removed on exit).",
        ),
        click.option(
            "--base-path",
            default="/pop/v1",
            show_default=True,
            help="Path the endpoints live under.",
        ),
        click.option(
            "--seed",
            "seed_file",
            type=file,
            help="Seed the ledger from this JSON file instead of the shipped seed.",
        ),
        click.option(
            "--script",
            "script_file",
            type=file,
            help="Scripted answers per order id (stub.json format).",
        ),
        click.option(
            "--key",
            "keys",
            multiple=True,
            metavar="KEY",
            help="Test merchant key, must send dummy true (repeatable)  [default: Test-POP-Server-Key]",
        ),
        click.option(
            "--live-key",
            "live_keys",
            multiple=True,
            metavar="KEY",
            help="Live merchant key, may send dummy false (repeatable).",
        ),
        click.option(
            "--error-status",
            type=click.Choice(["http", "always-200"]),
            default="http",
            show_default=True,
            help="HTTP status of RCxx answers: 400/401/403/405/415, or always 200.",
        ),
        click.option(
            "--reauthorize-order-id",
            type=click.Choice(["original", "new"]),
            default="original",
            show_default=True,
            help="Which order id reauthorize answers carry.",
        ),
        click.option("--access-log", is_flag=True, help="Log every request on stderr."),
        click.option(
            "--latency",
            default=0.0,
            type=seconds,
            help="Delay every answer by SECONDS.",
        ),
        click.option(
            "--latency-max",
            default=None,
            type=seconds,
            help="With --latency: a random delay between the two.",
        ),
        click.option(
            "--latency-rate",
            default=1.0,
            type=rate,
            help="Share of requests that get the latency.",
        ),
        *(
            click.option(
                f"--{name.replace('_', '-')}",
                name,
                default=0.0,
                type=rate,
                metavar="RATE",
                help=text,
            )
            for name, (_, text) in _SANDBOX_RATES.items()
        ),
        click.option(
            "--retry-after",
            default=1,
            type=click.IntRange(min=0),
            show_default=True,
            help="Retry-After seconds for 429 and 503.",
        ),
        click.option(
            "--retry-after-style",
            type=click.Choice(["seconds", "http-date", "none"]),
            default="seconds",
            show_default=True,
            help="Retry-After as seconds, an HTTP date, or left out.",
        ),
        click.option(
            "--not-processed-status",
            default=200,
            type=click.IntRange(200, 599),
            show_default=True,
            help="HTTP status of the RA01/RD01/RM01 faults.",
        ),
        click.option(
            "--hang-limit",
            default=600.0,
            type=click.FloatRange(min=0.1),
            show_default=True,
            help="Seconds a hung connection is held at most.",
        ),
        click.option(
            "--seed-random",
            default=None,
            type=int,
            metavar="N",
            help="Seed the fault draws, so that a run is repeatable.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@main.command()
@_sandbox_options
@logging_options
def sandbox(verbose: int, quiet: bool, log_file: Path | None, **options: Any) -> None:
    """Serve a local POP simulator on loopback, for tests and demos.

    It prints "listening on http://HOST:PORT/pop/v1" and runs until SIGINT
    or SIGTERM. Each fault rate is a probability per request (together at
    most 1). The README's Sandbox section describes the seed and script
    formats and every behaviour the API text leaves open.
    """
    from popbatch import sandbox as pop_sandbox

    setup_logging(max(verbose, 1 if options["access_log"] else 0), quiet, log_file)
    faults = pop_sandbox.Faults(
        latency_s=options["latency"],
        latency_max_s=options["latency_max"],
        latency_rate=options["latency_rate"],
        retry_after_s=options["retry_after"],
        retry_after_style=pop_sandbox.RetryAfterStyle(options["retry_after_style"]),
        not_processed_status=options["not_processed_status"],
        hang_limit_s=options["hang_limit"],
        seed=options["seed_random"],
        **{field: options[name] for name, (field, _) in _SANDBOX_RATES.items()},
    )
    seed_file, script_file = options["seed_file"], options["script_file"]
    config = pop_sandbox.SandboxConfig(
        host=options["host"],
        port=options["port"],
        base_path=options["base_path"],
        test_keys=options["keys"] or (pop_sandbox.DEFAULT_TEST_KEY,),
        live_keys=options["live_keys"],
        seed=None if seed_file is None else pop_sandbox.load_seed_file(seed_file),
        script=None
        if script_file is None
        else pop_sandbox.load_script_file(script_file),
        faults=faults,
        error_status=pop_sandbox.ErrorStatus(options["error_status"]),
        reauthorize_echo=pop_sandbox.ReauthorizeEcho(options["reauthorize_order_id"]),
        access_log=options["access_log"],
    )
    # SandboxError is a PopbatchError: the group prints one line and exits 78.
    pop_sandbox.serve_until_signalled(
        config, announce=click.echo, port_file=options["port_file"]
    )


# --- end of sandbox command --------------------------------------------------
