"""A Review row sent again and refused by POP: never in the retry file, always named.

The first request is applied by the sandbox's ledger but answered with an
HTML 502 page, so the row lands in Review. Sent again (resolved as failed,
or with --resend-unknown), it gets the ledger's "already captured" or
"order id already used" refusal: the proof that the first request was
applied. A person who fixed such a row and sent it under a new order id
would charge twice, so the results say what happened and leave it out of
the retry file.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import Popbatch
from run_output import EXIT_FAILED, Results

from popbatch.sandbox import SandboxServer

pytestmark = pytest.mark.sandbox

REASON = (
    "sent again after Review, and POP refused it: if the first request was "
    "applied, this is why; check the order in the merchant portal before "
    "sending it again"
)


def end_line(order_ids: str) -> str:
    """The line a run prints at its end about one row refused when sent again."""
    return (
        "SENT AGAIN AFTER REVIEW AND REFUSED: 1 row was sent again after an "
        f"unknown outcome, and POP refused it (order_id {order_ids}). If the first "
        "request was applied, that is why: check the order in the merchant portal "
        "before sending it again. It is in Failed but not in the retry file."
    )


def summary_rows(results: Results) -> list[tuple[Any, ...]]:
    """Every row of the Summary sheet, as values."""
    sheet = results.workbook()["Summary"]
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


def code_line(results: Results, label: str) -> tuple[Any, ...]:
    """The Summary's result-code line whose code column is ``label``."""
    found = [row for row in summary_rows(results) if row[1] == label]
    assert len(found) == 1, found
    return found[0][:5]


def test_a_capture_resolved_as_failed_and_refused_as_captured_is_not_retried(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """resolve --failed, then AC47 "already captured": named, kept out of retry.csv."""
    sandbox.add_order("A-1", 5000)
    sandbox.add_order("A-2", 5000)
    path = popbatch.write_csv("february.csv", [("A-1", 1000), ("A 9", 1000)])
    sandbox.set_faults(bad_gateway_html=1.0)
    first = popbatch.run("capture", path, "--skip-invalid")
    assert first.exit_code == 3
    sandbox.set_faults()
    popbatch.command("resolve", "1", "A-1", "--failed", "--note", "not in portal")

    second = popbatch.run("capture", path, "--skip-invalid")

    results: Results = second
    failed = results.sheet("Failed")
    assert second.exit_code == 1
    assert sandbox.applied("A-1") == 1
    assert sandbox.received("A-1") == 2
    assert [(row["order_id"], row["result_code"]) for row in failed] == [
        ("A-1", "RM03")
    ]
    assert failed[0]["reason"] == REASON
    assert failed[0]["merr_msg"] == "既に売上済みの取引です。"
    assert (results.folder / "retry.csv").read_text("utf-8-sig").splitlines() == [
        "order_id,amount",
        "A 9,1000",
    ]
    assert end_line("A-1") in second.said
    assert second.said[-3:] == [
        end_line("A-1"),
        f"Results: {results.folder}",
        EXIT_FAILED,
    ]
    assert end_line("A-1") in results.summary()["notices"]
    assert end_line("A-1") in [row[0] for row in summary_rows(results)]
    assert code_line(results, "RM03 / AC47") == (
        "Failed",
        "RM03 / AC47",
        "既に売上済みの取引です。",
        1,
        1000,
    )
    assert results.summary()["refused_after_resend"] == [{"row": 2, "order_id": "A-1"}]
    assert results.summary()["notices"][-1] == (
        "retry.csv holds the 1 Rejected row as read, in the input's columns and "
        "format: fix it and run the same command on it. Review rows are not in it: "
        "check them in the merchant portal first."
    )


def test_a_reauthorize_sent_again_with_resend_unknown_and_refused_as_used(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """--resend-unknown, then AC49 "order id already used": not in the retry file."""
    sandbox.add_order("SUB-10-1", 1980)
    path = popbatch.write_csv(
        "reauth.csv",
        [("SUB-11-1", "SUB-10-1", 1980)],
        header="order_id,original_order_id,amount",
    )
    sandbox.set_faults(bad_gateway_html=1.0)
    assert popbatch.run("reauthorize", path).exit_code == 3
    sandbox.set_faults()

    second = popbatch.run("reauthorize", path, "--resend-unknown", "--yes")

    results: Results = second
    failed = results.sheet("Failed")
    assert second.exit_code == 1
    assert sandbox.applied("SUB-11-1") == 1
    assert [row["order_id"] for row in failed] == ["SUB-11-1"]
    assert failed[0]["reason"] == REASON
    assert not (results.folder / "retry.csv").exists()
    assert results.summary()["retry_file"] is None
    assert end_line("SUB-11-1") in second.said
    assert end_line("SUB-11-1") in results.summary()["notices"]
    assert code_line(results, "RM03 / AC49") == (
        "Failed",
        "RM03 / AC49",
        "指定されたオーダーIDは既に使用されています。",
        1,
        1980,
    )


def test_report_rebuilt_from_the_journal_says_the_same(
    popbatch: Popbatch, sandbox: SandboxServer, tmp_path: Any
) -> None:
    """popbatch report writes the same reason and notice from the journal alone."""
    sandbox.add_order("A-1", 5000)
    path = popbatch.captures("february.csv", ["A-1"])
    sandbox.set_faults(bad_gateway_html=1.0)
    popbatch.run("capture", path)
    sandbox.set_faults()
    popbatch.run("capture", path, "--resend-unknown", "--yes")

    rebuilt = popbatch.command("report", "1", "--out", str(tmp_path / "again"))

    results = Results(tmp_path / "again" / "february-capture-batch1")
    assert rebuilt.exit_code == 0
    assert results.sheet("Failed")[0]["reason"] == REASON
    assert end_line("A-1") in results.summary()["notices"]


def test_a_row_resolved_as_failed_is_left_to_the_same_command(
    popbatch: Popbatch, sandbox: SandboxServer, tmp_path: Any
) -> None:
    """Before the re-run, the retry file holds the declined row, not the resolved one."""
    sandbox.add_order("A-1", 5000, decline=True)
    sandbox.add_order("A-2", 5000)
    sandbox.script_order("A-2", {"status": 502, "body": "<html>Bad gateway</html>"})
    path = popbatch.captures("february.csv", ["A-1", "A-2"])
    assert popbatch.run("capture", path).exit_code == 3
    popbatch.command("resolve", "1", "A-2", "--failed", "--note", "not in portal")

    popbatch.command("report", "1", "--out", str(tmp_path / "again"))

    results = Results(tmp_path / "again" / "february-capture-batch1")
    assert results.order_ids("failed") == ["A-1", "A-2"]
    assert (results.folder / "retry.csv").read_text("utf-8-sig").splitlines() == [
        "order_id,amount",
        "A-1,1000",
    ]
    assert results.summary()["notices"][-1] == (
        "retry.csv holds the 1 Failed row as read, in the input's columns and "
        "format: fix it and run the same command on it. Review rows are not in it: "
        "check them in the merchant portal first. Nor are rows resolved as failed: "
        "the same command sends them again."
    )
