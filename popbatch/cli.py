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
import traceback
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import click

from popbatch import __version__
from popbatch.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENDPOINT,
    DEFAULT_RATE,
    MAX_CONCURRENCY,
    ControlTotals,
    ReadOptions,
    RetrySettings,
    RunOptions,
    Settings,
    Timeouts,
    check_endpoint,
    load_server_key,
    parse_amount_option,
    resolve_settings,
)
from popbatch.errors import ExitCode, OutputError, PopbatchError, UsageError

logger = logging.getLogger("popbatch")

F = TypeVar("F", bound=Callable[..., Any])

# Where --debug is remembered: ctx.meta is shared by a command and its group,
# and, unlike a global, starts afresh at every invocation.
_DEBUG = "popbatch.debug"


class PopbatchGroup(click.Group):
    """A click group that turns PopbatchError into a message and an exit code.

    Every error leaves as ``Error: ...`` on stderr, an optional hint line,
    and DESIGN.md's exit code; a traceback is printed only with --debug.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except PopbatchError as error:
            _echo_error(ctx, error.message, error.hint)
            ctx.exit(int(error.exit_code))
        except KeyboardInterrupt:
            _echo_error(ctx, "interrupted; nothing was sent")
            ctx.exit(int(ExitCode.INTERRUPTED))
        except Exception as error:
            # A bug, not a user error: one line, and the traceback on request.
            _echo_error(
                ctx,
                f"popbatch stopped on an internal error ({type(error).__name__})",
                "This is a bug. The journal records what was sent; run the same "
                "command with --debug to see the traceback, and report it.",
            )
            ctx.exit(int(ExitCode.INTERNAL_ERROR))


def _echo_error(ctx: click.Context, message: str, hint: str | None = None) -> None:
    """Print an error on stderr: the traceback (with --debug), the line, the hint."""
    if ctx.meta.get(_DEBUG):
        traceback.print_exc()
    click.echo(f"Error: {message}", err=True)
    if hint:
        click.echo(hint, err=True)


@click.group(
    name="popbatch",
    cls=PopbatchGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="popbatch")
def main() -> None:
    """Bulk VeriTrans4G POP card operations from CSV and Excel files.

    Test mode is the default: every request carries dummy true unless
    --live is given. Settings may live in ./popbatch.toml (see --config);
    the server key comes from POP_SERVER_KEY or --server-key-file only.
    Exit codes are listed in the README.
    """


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_DEBUG] = True
    return value


def stdin_is_terminal() -> bool:
    """Whether a person can answer a question (stdin is a terminal)."""
    return sys.stdin.isatty()


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
            metavar="PATH",
            help="Append one key=value line per row outcome to this file.",
        ),
        click.option(
            "--debug",
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_set_debug,
            help="Show the traceback of any error (for a bug report).",
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
        raise OutputError(
            f"cannot open the log file {str(path)!r}: {exc.strerror}",
            hint="Check the folder, or give another --log-file.",
        ) from None


# click 8.2 made ParamType generic; older releases cannot subscript it.
if TYPE_CHECKING:
    _IntParamType: TypeAlias = click.ParamType[int]
else:
    _IntParamType = click.ParamType


class AmountType(_IntParamType):
    """A whole number of yen on the command line: ``1200000`` or ``1,200,000``."""

    name = "amount"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        option = param.opts[0] if param is not None and param.opts else "amount"
        try:
            return parse_amount_option(str(value), option)
        except UsageError:
            self.fail(
                f"{value!r} is not a whole number of yen (e.g. 1200000 or 1,200,000).",
                param,
                ctx,
            )


_JOURNAL_HELP = (
    "Journal file. [env POPBATCH_JOURNAL; config journal; default: "
    "popbatch/journal.sqlite3 under $XDG_STATE_HOME or ~/.local/state]"
)
_CONFIG_HELP = (
    "Settings file (TOML: endpoint, rate, concurrency, journal, out). "
    "[default: ./popbatch.toml when present]"
)


def config_option(function: F) -> F:
    """The --config option, shared by every command that reads settings."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help=_CONFIG_HELP,
    )(function)


def run_options(function: F) -> F:
    """The options of the four operation commands (capture, cancel, ...)."""
    seconds = click.FloatRange(min=0.1)
    options = [
        click.argument("file", type=click.Path(path_type=Path)),
        click.option(
            "--endpoint",
            metavar="URL",
            help="POP base URL; the operation's path (card-capture, ...) is "
            f"appended. [env POP_ENDPOINT; config endpoint; default: {DEFAULT_ENDPOINT}]",
        ),
        click.option(
            "--server-key-file",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="PATH",
            help="Read the server key from this file, readable by you alone "
            "(chmod 600). [default: env POP_SERVER_KEY]",
        ),
        click.option(
            "--live",
            is_flag=True,
            help="Send dummy false: real money moves. Shows the rows and total "
            "and asks first.",
        ),
        click.option(
            "--yes",
            is_flag=True,
            help="Do not ask before a live run (for cron, which has no terminal).",
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            help="Read, validate and plan; write a preview of the exact requests; "
            "send nothing (no key needed).",
        ),
        click.option(
            "--skip-invalid",
            is_flag=True,
            help="Send the valid rows even when others are invalid (they go to "
            "Rejected).",
        ),
        click.option(
            "--expect-rows",
            type=click.IntRange(min=0),
            metavar="N",
            help="Refuse the run (exit 65) unless exactly N rows would be sent.",
        ),
        click.option(
            "--expect-total",
            type=AmountType(),
            metavar="AMOUNT",
            help="Refuse the run (exit 65) unless the rows to send total exactly "
            "AMOUNT yen.",
        ),
        click.option(
            "--max-total",
            type=AmountType(),
            metavar="AMOUNT",
            help="Refuse the run (exit 65) if the rows to send total more than "
            "AMOUNT yen.",
        ),
        click.option(
            "--sheet", metavar="NAME", help="Excel sheet to read. [default: the first]"
        ),
        click.option(
            "--encoding",
            metavar="NAME",
            help="CSV encoding: utf-8, utf-8-sig, utf-16, cp932 (also shift_jis). "
            "[default: detected]",
        ),
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            metavar="DIR",
            help="Folder under which each run writes a folder of its own. "
            "[config out; default: ./popbatch-results]",
        ),
        click.option(
            "--csv-encoding",
            type=click.Choice(["utf-8-sig", "cp932"]),
            default="utf-8-sig",
            show_default=True,
            help="Encoding of the result CSV files.",
        ),
        click.option(
            "--journal",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="PATH",
            help=_JOURNAL_HELP,
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0),
            metavar="N",
            help="Requests per second over all workers; 0 for no limit. "
            f"[config rate; default: {DEFAULT_RATE:g}]",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1, max=MAX_CONCURRENCY),
            metavar="N",
            help="Requests in flight at once. "
            f"[config concurrency; default: {DEFAULT_CONCURRENCY}]",
        ),
        click.option(
            "--timeout",
            type=seconds,
            default=Timeouts().read,
            show_default=True,
            metavar="SECONDS",
            help="Wait this long for an answer; then the row goes to Review.",
        ),
        click.option(
            "--connect-timeout",
            type=seconds,
            default=Timeouts().connect,
            show_default=True,
            metavar="SECONDS",
            help="Wait this long for a connection (nothing was sent yet).",
        ),
        click.option(
            "--max-retry-wait",
            type=click.FloatRange(min=0),
            default=RetrySettings().retry_after_ceiling,
            show_default=True,
            metavar="SECONDS",
            help="Longest Retry-After to wait for; a longer one stops the batch "
            "(exit 75).",
        ),
        click.option(
            "--stop-after",
            type=click.IntRange(min=1),
            default=RetrySettings().stop_after_consecutive,
            show_default=True,
            metavar="N",
            help="Stop the batch after N answers in a row that say nothing was "
            "sent or processed, or N in a row whose outcome is unknown.",
        ),
        click.option(
            "--resend-unknown",
            is_flag=True,
            help="Send this batch's Review rows again (asks first; --yes does not "
            "ask).",
        ),
        click.option(
            "--allow-repeat",
            is_flag=True,
            help="Send a partial refund that repeats an earlier one (same order, "
            "same amount).",
        ),
        config_option,
    ]
    # The shared logging options are listed last in --help.
    function = logging_options(function)
    for option in reversed(options):
        function = option(function)
    return function


_SETTING_NAMES = ("endpoint", "rate", "concurrency", "journal", "out")


def settings_from(values: dict[str, Any]) -> Settings:
    """The settings of a command: its options, the environment, the config file."""
    given = {name: values.get(name) for name in _SETTING_NAMES}
    return resolve_settings(
        given, config=values.get("config"), cwd=Path.cwd(), environ=os.environ
    )


def build_run_options(operation: str, values: dict[str, Any]) -> RunOptions:
    """Turn an operation command's options into RunOptions.

    Settings follow the precedence of config.resolve_settings: command line,
    then environment, then the config file, then the defaults.
    """
    settings = settings_from(values)
    check_endpoint(settings.endpoint)
    return RunOptions(
        operation=operation,
        input_path=values["file"],
        endpoint=settings.endpoint,
        out_dir=settings.out,
        journal_path=settings.journal,
        read=ReadOptions(sheet=values["sheet"], encoding=values["encoding"]),
        live=values["live"],
        yes=values["yes"],
        dry_run=values["dry_run"],
        skip_invalid=values["skip_invalid"],
        resend_unknown=values["resend_unknown"],
        allow_repeat=values["allow_repeat"],
        rate=settings.rate,
        concurrency=settings.concurrency,
        timeouts=Timeouts(connect=values["connect_timeout"], read=values["timeout"]),
        retry=RetrySettings(
            retry_after_ceiling=values["max_retry_wait"],
            stop_after_consecutive=values["stop_after"],
        ),
        totals=ControlTotals(
            max_total=values["max_total"],
            expect_rows=values["expect_rows"],
            expect_total=values["expect_total"],
        ),
        csv_encoding=values["csv_encoding"],
        quiet=values["quiet"],
    )


# --- operation commands ------------------------------------------------------


def _operation_command(name: str, summary: str) -> None:
    """Register ``popbatch NAME FILE`` for one of the four operations."""

    @main.command(name=name, help=summary + _RUN_HELP, short_help=summary)
    @run_options
    @click.pass_context
    def command(ctx: click.Context, /, **values: Any) -> None:
        ctx.exit(int(_run(name, values)))


_RUN_HELP = """

FILE is a CSV (UTF-8, UTF-8 with BOM, UTF-16, CP932) or Excel workbook
(.xlsx, .xlsm). Every row is validated before anything is sent; the
results go to a folder of their own under --out. Re-running the same
command resumes the batch and never sends a row twice.

Exit codes: 0 all succeeded, 1 some failed or rejected, 3 some in Review,
65 input refused, 75 try again later; the README lists them all.
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
    setup_logging(values["verbose"], values["quiet"], values["log_file"])
    # Refused before the key or the file is read: cron must not get further.
    asks = values["live"] and not values["yes"] and not values["dry_run"]
    if asks and not stdin_is_terminal():
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
    _echo_notices(validation.notices, options.quiet)
    if validation.rejected and not options.skip_invalid:
        _refuse(validation, options.out_dir)

    stop = pipeline.StopSignal()
    progress = Progress(quiet=options.quiet)
    hooks = pipeline.RunHooks(
        confirm=lambda confirmation: _confirm_live(confirmation, options.quiet),
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
    """Preview a run: no key, nothing sent; exit 0, or 65 when refused."""
    from popbatch import pipeline

    preview = pipeline.dry_run(options)
    _echo_notices(preview.validation.notices, options.quiet)
    if preview.validation.rejected and not options.skip_invalid:
        _refuse(preview.validation, options.out_dir)
    if not (options.quiet and preview.exit_code is ExitCode.OK):
        for line in preview.lines:
            click.echo(line, err=True)
    return preview.exit_code


def _refuse(validation: Any, out_dir: Path) -> None:
    """Show the invalid rows, write them to a file, and refuse the run (65)."""
    from popbatch import pipeline

    _echo_problem_table(validation, err=True)
    try:
        written = pipeline.write_rejected(validation, out_dir)
    except OutputError as error:
        click.echo(f"Note: {error.message}", err=True)
    else:
        click.echo(f"Rejected rows: {written}", err=True)
    pipeline.refuse_invalid(validation)


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"


def _confirm_live(confirmation: Any, quiet: bool) -> bool:
    """Before a live run: rows, total and, loudly, any full refunds; then ask.

    With --yes nothing is asked, and with --quiet as well nothing is shown.
    """
    if confirmation.yes and quiet:
        return True
    click.echo(
        f"LIVE {confirmation.operation}: {_rows(confirmation.rows)}, "
        f"{confirmation.total:,} yen in total, to {confirmation.endpoint}",
        err=True,
    )
    full = confirmation.full_refunds
    if full:
        listed = ", ".join(str(row) for row in full[:20])
        more = f" and {len(full) - 20:,} more" if len(full) > 20 else ""
        click.echo(
            f"WARNING: {_rows(len(full))} without an amount will refund the FULL "
            f"amount of the order (rows {listed}{more})",
            err=True,
        )
    if confirmation.yes:
        return True
    try:
        return click.confirm(
            "Send these requests with real money?", default=False, err=True
        )
    except click.Abort:
        # Ctrl-C or end of input at the question: the answer is no.
        click.echo(err=True)
        return False


def _confirm_resend(count: int) -> bool:
    """Before Review rows are sent again: they may have been applied already."""
    they, are, it = ("it", "is", "it") if count == 1 else ("they", "are", "them")
    click.echo(
        f"{_rows(count)} of this batch {are} in Review: {they} may already have "
        f"been applied at POP. Sending {it} again can charge or refund twice.",
        err=True,
    )
    if not stdin_is_terminal():
        raise UsageError(
            "--resend-unknown needs a terminal to confirm it, or --yes",
            hint="Check the Review rows in the merchant portal first.",
        )
    try:
        return click.confirm(f"Send {it} again?", default=False, err=True)
    except click.Abort:
        click.echo(err=True)
        return False


def _echo_notices(notices: Sequence[str], quiet: bool) -> None:
    if quiet:
        return
    for notice in notices:
        click.echo(f"Note: {notice}", err=True)


_TABLE_LIMIT = 50


def _echo_problem_table(validation: Any, *, err: bool) -> None:
    """Print the invalid rows as a short table: row, column, value, problem."""
    from popbatch.pipeline import problem_rows

    lines = problem_rows(validation)
    click.echo(f"{'row':>7}  {_fit('column', 18)} {_fit('value', 20)} problem", err=err)
    for row, column, value, message in lines[:_TABLE_LIMIT]:
        click.echo(f"{row:>7}  {_fit(column, 18)} {_fit(value, 20)} {message}", err=err)
    if len(lines) > _TABLE_LIMIT:
        click.echo(
            f"... and {len(lines) - _TABLE_LIMIT:,} more problems (see the rejected "
            "rows file)",
            err=err,
        )


def _fit(text: str, width: int) -> str:
    """``text`` cut and padded to ``width`` terminal columns.

    Full-width characters (Japanese ids, memo text) take two columns, so
    counting characters would push the rest of the line out of its column.
    """
    columns = [2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text]
    if sum(columns) > width:
        kept, used = [], 0
        for ch, size in zip(text, columns, strict=True):
            if used + size > width - 1:
                break
            kept.append(ch)
            used += size
        return "".join(kept) + "…" + " " * (width - 1 - used)
    return text + " " * (width - sum(columns))


class Progress:
    """Progress on stderr: a bar on a terminal, else a line every 10% or minute.

    Nothing is shown with --quiet: the final summary says what a person
    must know.
    """

    def __init__(
        self,
        *,
        quiet: bool,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quiet = quiet
        self._tty = sys.stderr.isatty() if terminal is None else terminal
        self._clock = clock
        self._bar: Any = None
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._failed = 0
        self._review = 0
        self._tenths = 0
        self._started = self._last_line = clock()

    def start(self, total: int) -> None:
        """A run is about to send ``total`` rows."""
        self._total = total
        self._started = self._last_line = self._clock()
        if self._quiet:
            return
        if self._tty:
            from tqdm import tqdm

            # A terminal that reports no width (a fresh pty) would get an
            # empty bar from tqdm: assume 80 columns there.
            sized = _terminal_width() > 0
            self._bar = tqdm(
                total=total,
                unit="row",
                file=sys.stderr,
                dynamic_ncols=sized,
                ncols=None if sized else 80,
            )
        else:
            click.echo(f"sending {_rows(total)}", err=True)

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
            self._log_line()

    def _log_line(self) -> None:
        # Whole tenths in integers: 12 of 40 is 30%, not 29.999...%.
        tenths = self._done * 10 // self._total if self._total else 10
        now = self._clock()
        if tenths <= self._tenths and now - self._last_line < 60:
            return
        self._tenths = max(tenths, self._tenths)
        self._last_line = now
        share = self._done * 100 // self._total if self._total else 100
        rate = self._done / max(now - self._started, 1e-9)
        # A slow run (a low --rate, a slow gateway) reads better per minute.
        speed = f"{rate:.1f}/s" if rate >= 1 else f"{rate * 60:.1f}/min"
        click.echo(
            f"{self._done:,}/{self._total:,} rows ({share}%), {speed}, "
            f"{self._failed:,} failed, {self._review:,} in Review",
            err=True,
        )

    def close(self) -> None:
        """Finish the bar, if one was shown."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


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


@main.command(short_help="Check FILE for OPERATION; send nothing (exit 0 or 65).")
@click.argument(
    "operation", type=click.Choice(["capture", "cancel", "reauthorize", "authorize"])
)
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--sheet", metavar="NAME", help="Excel sheet to read. [default: the first]"
)
@click.option(
    "--encoding",
    metavar="NAME",
    help="CSV encoding: utf-8, utf-8-sig, utf-16, cp932 (also shift_jis). "
    "[default: detected]",
)
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

    setup_logging(verbose, quiet, log_file)
    out_dir = settings_from({"out": out, "config": config}).out
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
        _echo_problem_table(validation, err=False)
        written = pipeline.write_rejected(validation, out_dir)
        click.echo(
            f"{file.name}: {_rows(total)}, {total - rejected:,} valid, "
            f"{rejected:,} rejected ({described})",
            err=True,
        )
        click.echo(f"Rejected rows: {written}", err=True)
        ctx.exit(int(ExitCode.INPUT_REFUSED))
    if not quiet:
        click.echo(f"{file.name}: {_rows(total)}, all valid ({described})", err=True)
    ctx.exit(int(ExitCode.OK))


def _journal_options(function: F) -> F:
    function = config_option(function)
    return click.option(
        "--journal",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help=_JOURNAL_HELP,
    )(function)


@main.command(short_help="List batches and their rows per state.")
@click.argument("batch", type=int, required=False)
@_journal_options
def status(batch: int | None, journal: Path | None, config: Path | None) -> None:
    """List batches and their rows per state (or one BATCH in detail)."""
    from popbatch import batches

    path = settings_from({"journal": journal, "config": config}).journal
    for line in batches.status_lines(path, batch):
        click.echo(line)


@main.command()
@click.argument("batch", type=int)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Folder under which the results folder is rebuilt. "
    "[config out; default: ./popbatch-results]",
)
@click.option(
    "--csv-encoding",
    type=click.Choice(["utf-8-sig", "cp932"]),
    default="utf-8-sig",
    show_default=True,
    help="Encoding of the result CSV files.",
)
@_journal_options
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


@main.command(short_help="Settle Review rows after checking the merchant portal.")
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
@_journal_options
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
