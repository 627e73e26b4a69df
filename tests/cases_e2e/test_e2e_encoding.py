"""Case 01 end to end: CP932 from Japanese Excel, and other encodings of its kind.

A batch is sent to the sandbox and the memo column is read back from
results.xlsx and the CSV twins; the encoding used is named in the run's
summary; a wrong ``--encoding`` stops the run before anything is sent.
Variants: a CP932 file whose first kanji comes after 100 KB, the user's
``--encoding shift_jis``, a UTF-16 tab-separated file (Excel's "Unicode
text") with its retry file, and CP932 result CSVs.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from harness import CASES, Popbatch
from run_output import read_text_csv, sheet_rows

from popbatch.io.readers import read_input

CASE = CASES / "01-cp932-excel-csv"
MEMOS = {
    "ORD-CP-001": "髙山テスト店",
    "ORD-CP-002": "﨑浜サンプル商会",
    "ORD-CP-003": "①回目の再送",
}
MOJIBAKE_MARKS = ("\ufffd", "Ã", "ã")


def seed_cp932_orders(popbatch: Popbatch) -> None:
    """The three orders of orders_cp932.csv, authorised in the sandbox."""
    for order_id in MEMOS:
        popbatch.sandbox.add_order(order_id, 5000)


def all_text(folder: Path) -> str:
    """Every CSV of a results folder, decoded as written (UTF-8 with BOM)."""
    return "".join(path.read_text("utf-8-sig") for path in sorted(folder.glob("*.csv")))


def test_case_01_memos_reach_the_results_intact(popbatch: Popbatch) -> None:
    """髙, 﨑 and ① come through to results.xlsx and succeeded.csv unchanged."""
    seed_cp932_orders(popbatch)
    log = popbatch.root / "run.log"

    run = popbatch.run("capture", CASE / "orders_cp932.csv", "--log-file", str(log))

    assert run.exit_code == 0, run.stderr
    assert popbatch.sent("card-capture") == {
        "ORD-CP-001": {"order_id": "ORD-CP-001", "amount": 1000, "dummy": True},
        "ORD-CP-002": {"order_id": "ORD-CP-002", "amount": 1500, "dummy": True},
        "ORD-CP-003": {"order_id": "ORD-CP-003", "amount": 2500, "dummy": True},
    }
    assert run.column("Succeeded", "memo") == MEMOS
    twin = run.twin("succeeded.csv")
    assert dict(zip(twin["order_id"], twin["memo"], strict=True)) == MEMOS
    text = all_text(run.folder)
    assert not [mark for mark in MOJIBAKE_MARKS if mark in text]


def test_case_01_the_run_names_the_encoding_it_used(popbatch: Popbatch) -> None:
    """The Summary sheet, summary.json and the log file all say cp932."""
    seed_cp932_orders(popbatch)
    log = popbatch.root / "run.log"

    run = popbatch.run("capture", CASE / "orders_cp932.csv", "--log-file", str(log))

    summary = {row[0]: row[1] for row in run.workbook()["Summary"].values}
    assert summary["Input read as"] == "CSV, encoding cp932, delimiter ','"
    assert "encoding: cp932" in summary
    assert run.summary()["input"]["encoding"] == "cp932"
    assert "input=orders_cp932.csv encoding: cp932" in log.read_text("utf-8")


def test_case_01_first_kanji_after_4_kb_reaches_the_last_request(
    popbatch: Popbatch,
) -> None:
    """All 161 rows go out once; the last row's memo is intact in the results."""
    for n in range(1, 162):
        popbatch.sandbox.add_order(f"ORD-CP-{1000 + n}", 100_000)

    run = popbatch.run("capture", CASE / "orders_cp932_late_kanji.csv")

    assert run.exit_code == 0, run.stderr
    sent = popbatch.sent("card-capture")
    assert {order_id: body["amount"] for order_id, body in sent.items()} == {
        f"ORD-CP-{1000 + n}": 100 * n for n in range(1, 162)
    }
    memos = run.column("Succeeded", "memo")
    assert memos["ORD-CP-1161"] == "髙山テスト店"
    assert run.summary()["input"]["encoding"] == "cp932"


@pytest.mark.parametrize(
    ("name", "line"),
    [("orders_cp932.csv", 2), ("orders_cp932_late_kanji.csv", 162)],
)
def test_case_01_utf8_given_for_cp932_stops_before_sending(
    popbatch: Popbatch, name: str, line: int
) -> None:
    """--encoding utf-8: one error naming the line, exit 66, nothing sent."""
    seed_cp932_orders(popbatch)

    run = popbatch.run("capture", CASE / name, "--encoding", "utf-8")

    assert run.exit_code == 66
    assert run.stderr == (
        f"Error: {name} is not valid utf-8: line {line} has bytes that utf-8 "
        "cannot decode\n"
        "Name the file's real encoding with --encoding (utf-8, utf-16 or cp932), "
        "or leave it out to detect it.\n"
    )
    assert run.stdout == ""
    assert popbatch.sandbox.received() == 0
    assert not popbatch.out.exists()


def test_case_01_shift_jis_given_by_the_user_is_read_as_cp932(
    popbatch: Popbatch,
) -> None:
    """--encoding shift_jis never reaches Python's shift_jis codec."""
    seed_cp932_orders(popbatch)

    run = popbatch.run("capture", CASE / "orders_cp932.csv", "--encoding", "shift_jis")

    assert run.exit_code == 0, run.stderr
    assert run.column("Succeeded", "memo") == MEMOS
    assert run.summary()["input"]["encoding"] == "cp932"


def test_case_01_cp932_result_csvs_keep_the_windows_characters(
    popbatch: Popbatch,
) -> None:
    """With --csv-encoding cp932 the twins hold 髙, 﨑 and ①, not a 〓."""
    seed_cp932_orders(popbatch)

    run = popbatch.run("capture", CASE / "orders_cp932.csv", "--csv-encoding", "cp932")

    twin = read_text_csv(run.folder / "succeeded.csv", encoding="cp932")
    assert dict(zip(twin["order_id"], twin["memo"], strict=True)) == MEMOS
    assert "〓" not in (run.folder / "succeeded.csv").read_bytes().decode("cp932")


def test_variant_cp932_kanji_after_100_kb_is_sent_and_carried(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """The only non-ASCII bytes are on the last row, 100 KB in: still CP932."""
    memo = "x" * 2500
    lines = ["order_id,amount,memo"]
    lines += [f"LATE-{n:03d},{n * 10},{memo}" for n in range(1, 41)]
    lines.append("LATE-041,410,㈱髙﨑①")
    path = tmp_path / "late_kanji.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp932"))
    assert path.read_bytes().index(b"\x87") > 100_000
    for n in range(1, 42):
        popbatch.sandbox.add_order(f"LATE-{n:03d}", 1000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 0, run.stderr
    assert len(popbatch.sent("card-capture")) == 41
    assert run.column("Succeeded", "memo")["LATE-041"] == "㈱髙﨑①"
    assert run.summary()["input"]["encoding"] == "cp932"


UTF16_TEXT = (
    "order_id\tamount\tmemo\r\n"
    "U16-001\t1,000\t髙山テスト店\r\n"
    "U16-002\t２０００\t①回目の再送\r\n"
    "U16-003\t3000\t=SUM(1+1)\r\n"
)


def test_variant_utf16_tab_file_is_sent_and_carried(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """Excel's "Unicode text": UTF-16 with a BOM, tabs; memos come through."""
    path = tmp_path / "unicode_text.txt"
    path.write_bytes(UTF16_TEXT.encode("utf-16"))
    for order_id in ("U16-001", "U16-002", "U16-003"):
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 0, run.stderr
    assert {k: v["amount"] for k, v in popbatch.sent("card-capture").items()} == {
        "U16-001": 1000,
        "U16-002": 2000,
        "U16-003": 3000,
    }
    assert run.column("Succeeded", "memo") == {
        "U16-001": "髙山テスト店",
        "U16-002": "①回目の再送",
        "U16-003": "=SUM(1+1)",
    }
    assert run.summary()["input"]["encoding"] == "utf-16"


def test_variant_utf16_retry_file_reads_back_as_written(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A declined row's retry.csv is UTF-16 with tabs, and reads back unchanged."""
    path = tmp_path / "unicode_text.txt"
    path.write_bytes(UTF16_TEXT.encode("utf-16"))
    popbatch.sandbox.add_order("U16-001", 5000)
    popbatch.sandbox.add_order("U16-002", 5000, decline=True)
    popbatch.sandbox.add_order("U16-003", 5000, decline=True)

    run = popbatch.run("capture", path)

    assert run.exit_code == 1, run.stderr
    retry = run.folder / "retry.csv"
    assert retry.read_bytes().startswith(b"\xff\xfe")
    table = read_input(retry)
    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert table.headers == ("order_id", "amount", "memo")
    assert table.cells.values.tolist() == [
        ["U16-002", "２０００", "①回目の再送"],
        ["U16-003", "3000", "=SUM(1+1)"],
    ]


def test_case_01_cp932_retry_file_keeps_its_encoding_and_characters(
    popbatch: Popbatch,
) -> None:
    """A declined row goes to retry.csv in CP932, and reads back with ① intact."""
    seed_cp932_orders(popbatch)
    popbatch.sandbox.add_order("ORD-CP-003", 5000, decline=True)

    run = popbatch.run("capture", CASE / "orders_cp932.csv")

    assert run.exit_code == 1, run.stderr
    retry = run.folder / "retry.csv"
    assert retry.read_bytes().decode("cp932") == (
        "order_id,amount,memo\r\nORD-CP-003,2500,①回目の再送\r\n"
    )
    table = read_input(retry)
    assert table.encoding == "cp932"
    assert table.cells.values.tolist() == [["ORD-CP-003", "2500", "①回目の再送"]]


def test_case_01_results_rebuilt_from_the_journal_keep_the_memos(
    popbatch: Popbatch,
) -> None:
    """popbatch report rebuilds the same files, memos intact, from the journal alone."""
    seed_cp932_orders(popbatch)
    run = popbatch.run("capture", CASE / "orders_cp932.csv")

    rebuilt = popbatch.invoke(
        "report",
        "1",
        "--journal",
        str(popbatch.journal),
        "--out",
        str(popbatch.root / "rebuilt"),
    )

    assert rebuilt.exit_code == 0, rebuilt.stderr
    folder = Path(rebuilt.stdout.strip())
    assert folder.name == run.folder.name
    for name in ("succeeded.csv", "rejected.csv", "summary.json"):
        assert (folder / name).exists()
    assert (folder / "succeeded.csv").read_bytes() == (
        run.folder / "succeeded.csv"
    ).read_bytes()
    book = openpyxl.load_workbook(folder / "results.xlsx")
    memos = {row["order_id"]: row["memo"] for row in sheet_rows(book["Succeeded"])}
    assert memos == MEMOS


def test_variant_rows_appended_in_another_encoding_stop_the_run(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """UTF-8 rows then CP932 rows: refused (66) rather than sent with 霑秘≡ memos."""
    path = tmp_path / "appended.csv"
    path.write_bytes(
        b"order_id,amount,memo\r\n"
        + "MX-1,1000,返金（二重決済）\r\n".encode()
        + "MX-2,2000,返金（二重決済）\r\n".encode("cp932")
    )
    popbatch.sandbox.add_order("MX-1", 5000)
    popbatch.sandbox.add_order("MX-2", 5000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 66
    assert run.stderr == (
        "Error: appended.csv mixes encodings: line 2 is UTF-8 and line 3 is not; "
        "read as either one, some lines would be garbled\n"
        'Save the whole file again in one encoding (Excel: "CSV UTF-8"); if it '
        "really is all CP932, say so with --encoding cp932.\n"
    )
    assert popbatch.sandbox.received() == 0
