"""The options the commands share, and how their values become settings.

Each command's options are click decorators defined here once: logging and
--debug for every command, --config and --journal for those that read
settings, and the many options of the four operation commands. The values
given become ``Settings`` and ``RunOptions`` by config.resolve_settings's
precedence: command line, then environment, then the config file, then the
defaults.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import click

from popbatch.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENDPOINT,
    DEFAULT_RATE,
    MAX_CONCURRENCY,
    MIN_RATE,
    ControlTotals,
    ReadOptions,
    RetrySettings,
    RunOptions,
    Settings,
    Timeouts,
    check_endpoint,
    parse_amount_option,
    resolve_settings,
)
from popbatch.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

# Where --debug is remembered: ctx.meta is shared by a command and its group,
# and, unlike a global, starts afresh at every invocation.
DEBUG = "popbatch.debug"


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[DEBUG] = True
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


# The longest wait an option may ask for: an hour is far past any answer
# POP gives or any Retry-After it sends. The slowest --rate is MIN_RATE.
MAX_WAIT_S = 3600.0


class FiniteFloatRange(click.FloatRange):
    """A number in a range, refusing nan, inf and -inf, which no option can mean.

    click's FloatRange lets nan through (it compares false with any bound)
    and inf past an open top; either would reach a timer or a socket and
    stop the run on an error that is not the user's.
    """

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return super().convert(value, param, ctx)  # click's own message
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


class RateType(FiniteFloatRange):
    """Requests per second: 0 (no limit), or from MIN_RATE up.

    A smaller rate spaces two requests by more than a quarter of an hour,
    which nobody means, and a tiny one overflows the timer that waits.
    """

    def __init__(self) -> None:
        super().__init__(min=0)

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        rate = super().convert(value, param, ctx)
        # 1e-400 reads as 0.0, which would mean no limit at all.
        if 0 < rate < MIN_RATE or (rate == 0 and _has_nonzero_digit(value)):
            self.fail(
                f"{value!r} is too slow: give 0 (no limit) or at least {MIN_RATE:g} "
                "requests per second.",
                param,
                ctx,
            )
        return rate


def _has_nonzero_digit(value: Any) -> bool:
    """Whether the significand of a number as typed has a digit other than 0."""
    if not isinstance(value, str):
        return False
    significand = value.lower().partition("e")[0]
    return any(char in "123456789" for char in significand)


_JOURNAL_HELP = (
    "Journal file. [env POPBATCH_JOURNAL; config journal; default: "
    "popbatch/journal.sqlite3 under $XDG_STATE_HOME or ~/.local/state]"
)
_CONFIG_HELP = (
    "Settings file (TOML: endpoint, rate, concurrency, journal, out). "
    "[default: ./popbatch.toml when present]"
)


# Options that more than one command takes, word for word.
sheet_option = click.option(
    "--sheet", metavar="NAME", help="Excel sheet to read. [default: the first]"
)
encoding_option = click.option(
    "--encoding",
    metavar="NAME",
    help="CSV encoding: utf-8, utf-8-sig, utf-16, cp932 (also shift_jis). "
    "[default: detected]",
)
csv_encoding_option = click.option(
    "--csv-encoding",
    type=click.Choice(["utf-8-sig", "cp932"]),
    default="utf-8-sig",
    show_default=True,
    help="Encoding of the result CSV files.",
)
journal_option = click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help=_JOURNAL_HELP,
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
    seconds = FiniteFloatRange(min=0.1, max=MAX_WAIT_S)
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
            help="Refuse the run (exit 65) unless the batch has exactly N rows "
            "sent or to send (all but Rejected and Skipped ones), checked at "
            "every run that has rows to send.",
        ),
        click.option(
            "--expect-total",
            type=AmountType(),
            metavar="AMOUNT",
            help="Refuse the run (exit 65) unless the batch's rows sent or to "
            "send total exactly AMOUNT yen.",
        ),
        click.option(
            "--max-total",
            type=AmountType(),
            metavar="AMOUNT",
            help="Refuse the run (exit 65) if the batch's rows sent or to send "
            "total more than AMOUNT yen.",
        ),
        sheet_option,
        encoding_option,
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            metavar="DIR",
            help="Folder under which each run writes a folder of its own. "
            "[config out; default: ./popbatch-results]",
        ),
        csv_encoding_option,
        journal_option,
        click.option(
            "--rate",
            type=RateType(),
            metavar="N",
            help="Requests per second over all workers (0.001 or more); 0 for no "
            "limit. "
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
            type=FiniteFloatRange(min=0, max=MAX_WAIT_S),
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


def journal_options(function: F) -> F:
    """The --journal and --config options of status, report and resolve."""
    return journal_option(config_option(function))


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
