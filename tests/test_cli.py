"""Every message the command line shows a user, compared whole, with its exit code.

Errors leave popbatch as ``Error: ...`` on stderr, an optional hint on the
next line, and DESIGN.md's exit code; never a traceback unless --debug.
These tests run the real commands through click's CliRunner; the runs that
reach POP go to the session sandbox over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner
from harness import ROOT, SAMPLE_DATA, Popbatch

from popbatch import __version__, pipeline
from popbatch.cli import main
from popbatch.cli.output import Progress
from popbatch.journal import JournalLock
from popbatch.rows import RowState


@pytest.fixture
def one_row(ws: Popbatch) -> Path:
    """A valid one-row capture file whose order the sandbox knows."""
    ws.sandbox.add_order("A-1", 1000)
    return ws.write("one.csv", "order_id,amount\nA-1,1000\n")


# --- bad usage: exit 2 ---------------------------------------------------------


def test_an_option_value_of_the_wrong_type_is_bad_usage(ws):
    """click's own message, with the usage line, and exit 2."""
    result = ws.invoke("capture", "one.csv", "--rate", "fast")

    assert result.exit_code == 2
    assert result.stderr == (
        "Usage: popbatch capture [OPTIONS] FILE\n"
        "Try 'popbatch capture --help' for help.\n"
        "\n"
        "Error: Invalid value for '--rate': 'fast' is not a valid float range.\n"
    )


def test_a_missing_file_argument_is_bad_usage(ws):
    """popbatch capture without FILE: exit 2."""
    result = ws.invoke("capture")

    assert result.exit_code == 2
    assert result.stderr == (
        "Usage: popbatch capture [OPTIONS] FILE\n"
        "Try 'popbatch capture --help' for help.\n"
        "\n"
        "Error: Missing argument 'FILE'.\n"
    )


def test_an_unknown_command_is_bad_usage(ws):
    """A misspelt command: exit 2."""
    result = ws.invoke("captrue", "one.csv")

    assert result.exit_code == 2
    assert result.stderr == (
        "Usage: popbatch [OPTIONS] COMMAND [ARGS]...\n"
        "Try 'popbatch --help' for help.\n"
        "\n"
        "Error: No such command 'captrue'. Did you mean 'capture'?\n"
    )


@pytest.mark.parametrize("word", ["refund", "Refund", "void"])
def test_a_refund_command_points_to_cancel(ws, word):
    """There is no refund command: the message names cancel, which refunds."""
    result = ws.invoke(word, "one.csv")

    assert result.exit_code == 2
    assert result.stderr == (
        "Usage: popbatch [OPTIONS] COMMAND [ARGS]...\n"
        "Try 'popbatch --help' for help.\n"
        "\n"
        f"Error: No such command {word!r}. Refunds are 'popbatch cancel FILE' "
        "(POP's card-cancel: an amount refunds part, a blank amount all).\n"
    )


def test_an_amount_option_that_is_not_whole_yen_is_bad_usage(ws):
    """--max-total 1.5 is refused before anything is read."""
    result = ws.invoke("capture", "one.csv", "--max-total", "1.5")

    assert result.exit_code == 2
    assert result.stderr == (
        "Usage: popbatch capture [OPTIONS] FILE\n"
        "Try 'popbatch capture --help' for help.\n"
        "\n"
        "Error: Invalid value for '--max-total': '1.5' is not a whole number of "
        "yen (e.g. 1200000 or 1,200,000).\n"
    )


def test_an_amount_option_takes_thousands_separators(ws, one_row):
    """--expect-total 1,000 is the whole number 1000."""
    result = ws.run(
        "capture", "one.csv", "--expect-total", "1,000", "--max-total", "1_000", "-q"
    )

    assert (result.exit_code, result.output) == (0, "")


def test_resolve_without_an_outcome_is_bad_usage(ws):
    """resolve needs ORDER_ID with --succeeded/--failed and --note, or --file."""
    result = ws.invoke("resolve", "1", "A-1", "--journal", str(ws.journal))

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: give ORDER_ID with --succeeded or --failed and --note, or --file\n"
        "Example: popbatch resolve 12 ORD-0042 --failed --note 'not in portal'\n"
    )


# --- the input file: exit 66 and 65 ---------------------------------------------


def test_a_missing_file_exits_66(ws):
    """The file named is not there."""
    result = ws.run("capture", "orders.csv")

    assert result.exit_code == 66
    assert result.stderr == (
        "Error: orders.csv does not exist\nCheck the file's name and folder.\n"
    )


def test_a_file_in_no_known_encoding_exits_66(ws):
    """Bytes that are neither UTF-8 nor CP932: named, never decoded lossily."""
    (ws.root / "orders.csv").write_bytes(b"order_id,amount\n\x81\xff,100\n")

    result = ws.run("capture", "orders.csv")

    assert result.exit_code == 66
    assert result.stderr == (
        "Error: orders.csv is neither UTF-8 (line 2 has byte 0x81) nor CP932 "
        "(line 2); the encodings tried were utf-8 and cp932\n"
        'Save it from Excel as "CSV UTF-8", or name its encoding with --encoding.\n'
    )


def test_csv_text_under_an_xlsx_name_exits_66(ws):
    """A CSV renamed to .xlsx is not read as a workbook."""
    ws.write("orders.xlsx", "order_id,amount\nA-1,1000\n")

    result = ws.run("capture", "orders.xlsx")

    assert result.exit_code == 66
    assert result.stderr == (
        "Error: orders.xlsx: this .xlsx file is not an Excel workbook (it looks "
        "like CSV text); rename it to .csv or save it again from Excel\n"
    )


def test_a_sheet_that_is_not_there_exits_66(ws):
    """--sheet with a name the workbook lacks lists the sheets it has."""
    path = SAMPLE_DATA / "month_end_captures.xlsx"

    result = ws.run("capture", str(path), "--sheet", "Orders")

    assert result.exit_code == 66
    assert result.stderr == (
        "Error: month_end_captures.xlsx has no sheet 'Orders' (found '11月締め')\n"
        "Try --sheet with one of those names.\n"
    )


def test_a_file_without_a_required_column_is_refused_with_65(ws):
    """A file-level refusal: one line naming the column and its aliases."""
    ws.write("orders.csv", "order_id,memo\nA-1,x\n")

    result = ws.run("capture", "orders.csv")

    assert result.exit_code == 65
    assert result.stderr == (
        'Error: orders.csv has no "amount" column for capture (row 1, the header, '
        'has "order_id", "memo")\n'
        "Name the column amount (or 金額, 決済金額, 請求金額, "
        "売上金額, 取引金額, 返金額, 返金金額, 取消金額).\n"
    )
    assert ws.sandbox.received() == 0


def test_invalid_rows_refuse_the_run_with_a_table_and_a_rejected_file(ws):
    """Without --skip-invalid nothing is sent; the table names row, column, value."""
    ws.sandbox.add_order("A-1", 1000)
    ws.write("orders.csv", "order_id,amount\nA-1,1000\nA 2,500\n注文-3,1.5\n")

    result = ws.run("capture", "orders.csv")

    assert result.exit_code == 65
    assert result.stdout == ""
    assert result.stderr == (
        "    row  column             value                problem\n"
        "      3  order_id           'A 2'                order_id 'A 2' has "
        "characters outside A-Z a-z 0-9 - _: ' '\n"
        "      4  order_id           '注文-3'             order_id '注文-3' has "
        "characters outside A-Z a-z 0-9 - _: '注' U+6CE8, '文' U+6587\n"
        "      4  amount             '1.5'                amount '1.5' is not a "
        "valid number: not a whole number of yen\n"
        f"Rejected rows: {ws.out / 'orders-capture-validate' / 'rejected.csv'}\n"
        "Error: orders.csv: 2 of 3 rows are invalid; nothing was sent\n"
        "Fix them (see the table above), or send the valid rows with "
        "--skip-invalid.\n"
    )
    assert ws.sandbox.received() == 0
    rejected = (ws.out / "orders-capture-validate" / "rejected.csv").read_text(
        "utf-8-sig"
    )
    assert rejected.splitlines()[0] == "row,order_id,amount,problems"


# --- the key: exit 78 and 77 -----------------------------------------------------


def test_no_key_exits_78_before_the_file_is_read(ws):
    """No POP_SERVER_KEY and no --server-key-file: the hint names --dry-run."""
    result = ws.run("capture", "not-read-yet.csv", key=None)

    assert result.exit_code == 78
    assert result.stderr == (
        "Error: no server key: set POP_SERVER_KEY or give --server-key-file PATH\n"
        "--dry-run needs no key and sends nothing.\n"
    )


def test_a_key_file_readable_by_others_exits_77_with_the_chmod_hint(ws, one_row):
    """Mode 644 is refused; the message never shows the key."""
    key_file = ws.write("pop.key", "Test-POP-Server-Key\n")
    key_file.chmod(0o644)

    result = ws.run("capture", "one.csv", "--server-key-file", "pop.key", key=None)

    assert result.exit_code == 77
    assert result.stderr == (
        "Error: the key file 'pop.key' can be read by other users (mode 0644)\n"
        "Run: chmod 600 pop.key\n"
    )
    assert ws.sandbox.received() == 0


def test_a_missing_key_file_exits_78(ws, one_row):
    """--server-key-file naming nothing."""
    result = ws.run("capture", "one.csv", "--server-key-file", "pop.key")

    assert result.exit_code == 78
    assert result.stderr == (
        "Error: the file given with --server-key-file cannot be read: "
        "no such file or directory\n"
        "Give the path of the file that holds the key (it is not shown here, "
        "in case the key itself was given).\n"
    )
    assert "pop.key" not in result.output


def test_the_key_file_wins_over_the_environment(ws, one_row):
    """A good key file is used even when POP_SERVER_KEY holds a wrong key."""
    key_file = ws.write("pop.key", "Test-POP-Server-Key\n")
    key_file.chmod(0o600)

    result = ws.run(
        "capture", "one.csv", "--server-key-file", "pop.key", "-q", key="wrong"
    )

    assert (result.exit_code, result.output) == (0, "")
    assert ws.sandbox.applied("A-1") == 1


def test_a_rejected_key_stops_the_batch_with_78(ws, one_row):
    """RC17 from POP: the row fails, the batch stops, exit 78."""
    result = ws.run("capture", "one.csv", "-q", key="not-the-key")

    assert result.exit_code == 78
    assert ws.sandbox.applied() == 0


# --- journal, results folder, log file ------------------------------------------


def test_a_journal_held_by_another_run_exits_75(ws, one_row):
    """One run at a time per journal; the message names the holder."""
    started = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    with JournalLock(ws.journal, clock=lambda: started):
        result = ws.run("capture", "one.csv")

    assert result.exit_code == 75
    assert result.stderr == (
        f"Error: another popbatch run is using the journal {str(ws.journal)!r} "
        f"(pid {os.getpid()}, started at 2026-11-30T23:00:00+00:00)\n"
        "Wait for it to finish and run the same command again; it resumes where "
        "the batch stands.\n"
    )
    assert ws.sandbox.received() == 0


def test_an_output_folder_that_cannot_be_made_exits_73_before_sending(ws, one_row):
    """--out under a file: refused before the first request."""
    ws.write("taken", "a file, not a folder\n")

    result = ws.invoke(
        "capture",
        "one.csv",
        "--endpoint",
        ws.sandbox.base_url,
        "--journal",
        str(ws.journal),
        "--out",
        "taken/results",
        "--rate",
        "0",
    )

    assert result.exit_code == 73
    assert result.stderr == (
        "Error: cannot write the results under 'taken/results': Not a directory; "
        "nothing was sent\n"
        "Check the folder and its permissions, or choose another with --out.\n"
    )
    assert ws.sandbox.received() == 0


def test_a_log_file_that_cannot_be_opened_exits_73(ws, one_row):
    """--log-file in a folder that is not there."""
    result = ws.run("capture", "one.csv", "--log-file", "no/such/run.log")

    assert result.exit_code == 73
    assert result.stderr == (
        "Error: cannot open the log file 'no/such/run.log': No such file or "
        "directory\n"
        "Check the folder, or give another --log-file.\n"
    )


def test_an_endpoint_that_is_not_a_url_exits_78(ws, one_row):
    """A host without http:// is refused before anything is planned."""
    result = ws.invoke("capture", "one.csv", "--endpoint", "pay3.veritrans.co.jp")

    assert result.exit_code == 78
    assert result.stderr == (
        "Error: the endpoint 'pay3.veritrans.co.jp' is not an http:// or https:// "
        "URL\n"
        "POP's endpoint is https://pay3.veritrans.co.jp/pop/v1 (the operation's "
        "path is added).\n"
    )


# --- unexpected errors ------------------------------------------------------------


def _explode(*args: object, **kwargs: object) -> None:
    raise RuntimeError("a bug in popbatch")


def test_an_internal_error_is_one_line_without_a_traceback(ws, one_row, monkeypatch):
    """A bug: exit 70, the exception's type, the --debug hint; no traceback."""
    monkeypatch.setattr(pipeline, "read_and_validate", _explode)

    result = ws.run("capture", "one.csv")

    assert result.exit_code == 70
    assert result.stderr == (
        "Error: popbatch stopped on an internal error (RuntimeError)\n"
        "This is a bug. The journal records what was sent; run the same command "
        "with --debug to see the traceback, and report it.\n"
    )


def test_an_internal_error_with_debug_shows_the_traceback(ws, one_row, monkeypatch):
    """--debug: the traceback first, then the same message and exit code."""
    monkeypatch.setattr(pipeline, "read_and_validate", _explode)

    result = ws.run("capture", "one.csv", "--debug")

    assert result.exit_code == 70
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert result.stderr.endswith(
        "RuntimeError: a bug in popbatch\n"
        "Error: popbatch stopped on an internal error (RuntimeError)\n"
        "This is a bug. The journal records what was sent; run the same command "
        "with --debug to see the traceback, and report it.\n"
    )


def test_a_user_error_with_debug_keeps_its_exit_code(ws):
    """--debug adds the traceback to a PopbatchError; the exit code stays 66."""
    result = ws.run("capture", "orders.csv", "--debug")

    assert result.exit_code == 66
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert result.stderr.endswith(
        "Error: orders.csv does not exist\nCheck the file's name and folder.\n"
    )


def test_debug_in_one_run_does_not_leak_into_the_next(ws):
    """--debug is per invocation, not a setting that sticks in the process."""
    ws.run("capture", "orders.csv", "--debug")

    result = ws.run("capture", "orders.csv")

    assert result.stderr == (
        "Error: orders.csv does not exist\nCheck the file's name and folder.\n"
    )


# --- validate --------------------------------------------------------------------


def test_validate_rejects_the_typical_mistakes_row_by_row(ws):
    """sample_data/typical_mistakes.csv: a table on stdout, a summary, exit 65."""
    path = SAMPLE_DATA / "typical_mistakes.csv"

    result = ws.invoke("validate", "capture", str(path), "--out", "out")

    assert result.exit_code == 65
    assert result.stdout == (
        "    row  column             value                problem\n"
        "      4  amount             '1,0000'             amount '1,0000' is not a "
        "valid number: commas must group three digits (10,000)\n"
        "      5  amount             '1500.5'             amount '1500.5' is not a "
        "valid number: not a whole number of yen\n"
        "      6  amount             ''                   amount is required\n"
        "      7  order_id           'TM 0006'            order_id 'TM 0006' has "
        "characters outside A-Z a-z 0-9 - _: ' '\n"
        "      8  amount             '１万'               amount '１万' is not a "
        "valid number: unit characters such as 万 are not read\n"
        "      9  amount             '0'                  amount '0' is below the "
        "minimum of 1\n"
        "     10  amount             '-500'               amount '-500' is not a "
        "valid number: a negative amount (amounts are 1 or more)\n"
        "     11  order_id           '注文-0010'          order_id '注文-0010' has "
        "characters outside A-Z a-z 0-9 - _: '注' U+6CE8, '文' U+6587\n"
        "     12  amount             '100000000'          amount '100000000' is "
        "above the maximum of 99,999,999\n"
        "     13  order_id           'TM-0012'            order_id TM-0012 appears "
        "more than once in this file (rows 13, 14); nothing was sent for it\n"
        "     14  order_id           'TM-0012'            order_id TM-0012 appears "
        "more than once in this file (rows 13, 14); nothing was sent for it\n"
        "     15  amount             '1e4'                amount '1e4' is not a "
        "valid number: exponent notation is not read\n"
    )
    assert result.stderr == (
        "typical_mistakes.csv: 14 rows, 2 valid, 12 rejected (encoding utf-8, "
        "comma-separated)\n"
        f"Rejected rows: {Path('out', 'typical_mistakes-capture-validate', 'rejected.csv')}\n"
    )
    rejected = ws.out / "typical_mistakes-capture-validate" / "rejected.csv"
    lines = rejected.read_text("utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in lines[1:]][:3] == ["4", "5", "6"]


def test_validate_of_a_good_file_says_so_and_notes_blank_rows(ws):
    """A blank row between data rows is a notice, not an error; exit 0."""
    ws.write("orders.csv", "order_id,amount\nA-1,100\n\nA-2,200\n")

    result = ws.invoke("validate", "capture", "orders.csv")

    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == (
        "Note: row 3 is blank (between data rows)\n"
        "orders.csv: 2 rows, all valid (encoding utf-8, comma-separated)\n"
    )


def test_validate_quiet_prints_nothing_for_a_good_file(ws):
    """validate -q: silence means valid."""
    ws.write("orders.csv", "order_id,amount\nA-1,100\n\nA-2,200\n")

    result = ws.invoke("validate", "capture", "orders.csv", "-q")

    assert (result.exit_code, result.output) == (0, "")


def test_validate_of_a_cp932_refund_file(ws):
    """sample_data/mass_refunds.csv is valid for cancel; its encoding is named."""
    result = ws.invoke("validate", "cancel", str(SAMPLE_DATA / "mass_refunds.csv"))

    assert result.exit_code == 0
    assert result.stderr.splitlines()[-1] == (
        "mass_refunds.csv: 40 rows, all valid (encoding cp932, comma-separated)"
    )


def test_validate_with_an_unknown_operation_is_bad_usage(ws):
    """The operation is one of the four."""
    result = ws.invoke("validate", "refund", "orders.csv")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for '{capture|cancel|reauthorize|authorize}': "
        "'refund' is not one of 'capture', 'cancel', 'reauthorize', 'authorize'."
    )


# --- version and help ------------------------------------------------------------


def test_version_prints_the_version():
    """popbatch --version."""
    result = CliRunner().invoke(main, ["--version"])

    assert (result.exit_code, result.output) == (
        0,
        f"popbatch, version {__version__}\n",
    )


def _commands() -> list[tuple[str, click.Command]]:
    return sorted(main.commands.items())


@pytest.mark.parametrize(("name", "command"), _commands(), ids=lambda x: str(x))
def test_help_of_every_command_lists_every_option_with_a_description(name, command):
    """--help works and each option shows with its text."""
    result = CliRunner().invoke(main, [name, "--help"])

    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: popbatch {name} [OPTIONS]")
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts[0]} has no help text"
            assert param.opts[0] in result.output


README = (ROOT / "README.md").read_text(encoding="utf-8")

# Options the README does not mention yet: reported to the README's owner.
UNDOCUMENTED: set[str] = set()


def _documented(option: click.Option) -> bool:
    return any(
        re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", README)
        for name in option.opts
    )


def _readme_cases() -> list[object]:
    cases: list[object] = []
    for name, command in _commands():
        for param in command.params:
            if not isinstance(param, click.Option) or param.opts[0] in ("-h",):
                continue
            option = (
                param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0]
            )
            marks = []
            if option in UNDOCUMENTED:
                marks.append(
                    pytest.mark.xfail(reason=f"README: {option} is not described yet")
                )
            cases.append(pytest.param(param, id=f"{name} {option}", marks=marks))
    return cases


@pytest.mark.parametrize("option", _readme_cases())
def test_every_option_of_every_command_is_in_the_readme(option):
    """The README names each option of each command (long or short form)."""
    assert _documented(option)


# --- progress -----------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _row(state: RowState) -> SimpleNamespace:
    return SimpleNamespace(state=state)


def test_progress_without_a_terminal_prints_a_line_every_tenth(capsys):
    """20 rows, one a second: a start line, then one line per 10%."""
    clock = FakeClock()
    progress = Progress(quiet=False, terminal=False, clock=clock)

    progress.start(20)
    for n in range(20):
        clock.now += 1
        progress.row_done(_row(RowState.FAILED if n == 4 else RowState.SUCCEEDED), None)
    progress.close()

    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "sending 20 rows"
    assert lines[1:4] == [
        "2/20 rows (10%), 1.0/s, 0 failed, 0 in Review",
        "4/20 rows (20%), 1.0/s, 0 failed, 0 in Review",
        "6/20 rows (30%), 1.0/s, 1 failed, 0 in Review",
    ]
    assert len(lines) == 11
    assert lines[-1] == "20/20 rows (100%), 1.0/s, 1 failed, 0 in Review"


def test_progress_without_a_terminal_prints_a_line_every_minute(capsys):
    """A slow run: a line once a minute even between two tenths."""
    clock = FakeClock()
    progress = Progress(quiet=False, terminal=False, clock=clock)

    progress.start(1000)
    for _ in range(3):
        clock.now += 30
        progress.row_done(_row(RowState.UNKNOWN), None)

    assert capsys.readouterr().err.splitlines() == [
        "sending 1,000 rows",
        "2/1,000 rows (0%), 2.0/min, 0 failed, 2 in Review",
    ]


def test_progress_with_quiet_prints_nothing(capsys):
    """--quiet: no start line, no progress lines, no bar."""
    progress = Progress(quiet=True, terminal=True, clock=FakeClock())

    progress.start(3)
    for _ in range(3):
        progress.row_done(_row(RowState.SUCCEEDED), None)
    progress.close()

    assert capsys.readouterr() == ("", "")


def test_progress_on_a_terminal_draws_a_bar_on_stderr(capsys):
    """A terminal gets tqdm's bar with the failures so far; stdout stays empty."""
    progress = Progress(quiet=False, terminal=True, clock=FakeClock())

    progress.start(3)
    for state in (RowState.SUCCEEDED, RowState.FAILED, RowState.SUCCEEDED):
        progress.row_done(_row(state), None)
    progress.close()

    out, err = capsys.readouterr()
    assert out == ""
    assert "3/3 [" in err
    assert "failed=1, review=0" in err


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_before_sending_exits_130_in_one_line(ws, one_row, monkeypatch):
    """Ctrl-C while the file is read: nothing was sent, exit 130."""
    monkeypatch.setattr(pipeline, "read_and_validate", _interrupt)

    result = ws.run("capture", "one.csv")

    assert result.exit_code == 130
    assert result.stderr == "Error: interrupted; nothing was sent\n"


def test_a_long_problem_table_stops_at_fifty_lines(ws):
    """The rest is counted and left to the rejected rows file."""
    rows = "".join(f"B {n},100\n" for n in range(53))
    ws.write("orders.csv", "order_id,amount\n" + rows)

    result = ws.invoke("validate", "capture", "orders.csv", "--out", "out")

    assert result.exit_code == 65
    lines = result.stdout.splitlines()
    assert len(lines) == 52
    assert lines[-1] == "... and 3 more problems (see the rejected rows file)"
