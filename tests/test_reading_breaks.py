"""Regression tests for the reading faults an adversarial review found.

Each test names the fault it guards. They check the read + validate level
(``read_input`` and ``validate``), and, where money would have moved, the
command line against the sandbox: what reached POP, by the sandbox's own
record.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from popbatch.cli import main
from popbatch.errors import ExitCode, InputRefusedError
from popbatch.io import normalise as norm
from popbatch.io.readers import read_input
from popbatch.operations import OPERATIONS
from popbatch.sandbox import SandboxServer
from popbatch.schema import Validation, validate

TEST_KEY = "Test-POP-Server-Key"


def write(path: Path, text: str) -> Path:
    """Write a UTF-8 input file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


def check(path: Path, operation: str = "capture") -> Validation:
    """Read and validate a file as a test run."""
    return validate(read_input(path), OPERATIONS[operation], live=False)


def requests(validation: Validation) -> list[dict[str, object]]:
    """The request fields of every valid row, in file order."""
    return [fields for _, fields in validation.iter_requests()]


def refusal(path: Path, operation: str) -> tuple[str, str | None]:
    """The message and hint of the InputRefusedError a file gets."""
    with pytest.raises(InputRefusedError) as caught:
        check(path, operation)

    return caught.value.message, caught.value.hint


def run(
    tmp_path: Path, sandbox: SandboxServer, operation: str, path: Path, *options: str
) -> Result:
    """Run ``popbatch OPERATION FILE`` in process against the sandbox."""
    argv = [
        operation,
        str(path),
        "--endpoint",
        sandbox.base_url,
        "--journal",
        str(tmp_path / "journal.sqlite3"),
        "--out",
        str(tmp_path / "results"),
        "--rate",
        "0",
        *options,
    ]
    env = {"POP_SERVER_KEY": TEST_KEY, "POP_ENDPOINT": None, "POPBATCH_JOURNAL": None}

    return CliRunner().invoke(main, argv, env=env)


# --- 1. headers that look like a field but were carried unread -----------------------


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("返金額（円）", "amount"),
        ("Amount (JPY)", "amount"),
        ("amount [yen]", "amount"),
        ("金額（円）（税込）", "amount"),
        ("決済金額【税込】", "amount"),
        ("※金額", "amount"),
        ("【必須】注文番号", "order_id"),
        ("注文番号*", "order_id"),
        ("Capture?", "capture"),
        ("売上確定：", "capture"),
        ("(memo)", None),
        ("備考（社内用）", None),
    ],
)
def test_a_bracketed_unit_or_note_and_marks_around_a_header_are_not_part_of_it(
    header: str, field: str | None
) -> None:
    """Unread headers: （円）, (JPY), [yen], (税込), 【必須】, ※ and ? hid the field."""
    assert norm.field_for_header(header) == field


@pytest.mark.parametrize("header", ["返金額（円）", "Amount (JPY)"])
def test_cancel_amounts_under_a_header_with_a_unit_are_sent(
    tmp_path: Path, header: str
) -> None:
    """Unread headers: a refund file's amounts under 返金額（円） were full refunds."""
    path = write(tmp_path / "refunds.csv", f"order_id,{header}\nRU-1,500\nRU-2,300\n")

    validation = check(path, "cancel")

    assert requests(validation) == [
        {"order_id": "RU-1", "amount": 500},
        {"order_id": "RU-2", "amount": 300},
    ]
    assert validation.notices == ()


def test_an_amount_column_and_the_same_name_with_a_unit_are_one_field_twice(
    tmp_path: Path,
) -> None:
    """Unread headers: amount beside Amount (JPY) is two amount columns, refused."""
    path = write(tmp_path / "orders.csv", "order_id,amount,Amount (JPY)\nA-1,1,2\n")

    assert refusal(path, "capture") == (
        'orders.csv: columns "amount", "Amount (JPY)" all mean amount (columns B '
        "and C); remove or rename all but one",
        "popbatch cannot know which column was meant, so it sends nothing.",
    )


def test_a_cancel_file_with_an_amount_lookalike_and_no_amount_column_is_refused(
    tmp_path: Path,
) -> None:
    """Unread headers: refund_amount was carried and every row refunded in full."""
    path = write(tmp_path / "refunds.csv", "order_id,refund_amount\nRU-1,500\n")

    assert refusal(path, "cancel") == (
        'refunds.csv: column "refund_amount" (B) looks like amount (its header '
        'holds "amount") but is not a name popbatch reads, and the file has no '
        "amount column: every row would cancel or refund the FULL amount of its "
        "order",
        'Name it "amount" if it holds the values to send as amount; to carry it '
        "through unread, give it a header with none of: amount, amt, price, total, "
        "yen, jpy, 金額, 額, 円, 価格, 代金, 料金, 合計.",
    )


@pytest.mark.parametrize(
    ("header", "word"), [("返金する額", "額"), ("Refund total", "total")]
)
def test_an_amount_word_in_a_cancel_file_without_amounts_is_refused(
    tmp_path: Path, header: str, word: str
) -> None:
    """Unread headers: a word of amount (not an accepted name) is enough there."""
    path = write(tmp_path / "refunds.csv", f"order_id,memo,{header}\nRU-1,x,500\n")

    message, _ = refusal(path, "cancel")

    assert message.startswith(
        f'refunds.csv: column "{header}" (C) looks like amount (its header holds '
        f'"{word}")'
    )


def test_a_reauthorize_file_with_a_capture_lookalike_is_refused(
    tmp_path: Path,
) -> None:
    """Unread headers: "capture flag" FALSE was ignored and the API default captured."""
    path = write(
        tmp_path / "reauth.csv",
        "order_id,original_order_id,amount,capture flag\nRA-1,OLD-1,1000,FALSE\n",
    )

    assert refusal(path, "reauthorize") == (
        'reauth.csv: column "capture flag" (D) looks like capture (its header '
        'holds "capture") but is not a name popbatch reads, and the file has no '
        "capture column: every row would be captured at once (the API default)",
        'Name it "capture" if it holds the values to send as capture; to carry it '
        "through unread, give it a header with none of: capture, 売上, 確定, 計上.",
    )


def test_an_authorize_file_with_a_card_lookalike_is_refused(tmp_path: Path) -> None:
    """Unread headers: a card id under another name would charge the standard card."""
    path = write(
        tmp_path / "paynow.csv",
        "order_id,amount,paynow_account_id,PayNow card\nPA-1,1000,ACC-1,C-1\n",
    )

    message, _ = refusal(path, "authorize")

    assert message == (
        'paynow.csv: column "PayNow card" (D) looks like paynow_card_id (its header '
        'holds "card") but is not a name popbatch reads, and the file has no '
        "paynow_card_id column: every row would charge the member's standard card"
    )


def test_a_lookalike_beside_the_column_that_is_read_is_refused(tmp_path: Path) -> None:
    """Unread headers: amount beside 合計金額 leaves popbatch guessing which is meant."""
    path = write(tmp_path / "orders.csv", "order_id,amount,合計金額\nA-1,1000,1100\n")

    assert refusal(path, "capture") == (
        'orders.csv: column "合計金額" (C) looks like amount (its header holds '
        '"金額") but is not a name popbatch reads; amount is read from column '
        '"amount" (B), and popbatch cannot tell which one you meant',
        'Remove or rename one of them; a header without "金額" is carried through '
        "unread.",
    )


@pytest.mark.parametrize(
    ("operation", "text"),
    [
        (
            "cancel",
            "order_id,備考,memo,customer,店舗,顧客名,返金理由,決済日,注文日時\n"
            "RU-1,a,b,c,d,e,f,g,h\n",
        ),
        (
            "capture",
            "order_id,amount,備考,memo,消費税額,決済方法,売上日\nA-1,1000,a,b,c,d,e\n",
        ),
        (
            "reauthorize",
            "order_id,original_order_id,amount,メモ,注文者\nA-1,OLD-1,1000,a,b\n",
        ),
        ("capture", "order_id,amount,元注文番号2,capture?\nA-1,1000,a,b\n"),
    ],
)
def test_ordinary_columns_are_carried_through(
    tmp_path: Path, operation: str, text: str
) -> None:
    """Unread headers: memo-like columns, and words of fields the file has, pass."""
    path = write(tmp_path / "orders.csv", text)

    validation = check(path, operation)

    assert validation.rejected == {}
    assert len(requests(validation)) == 1


@pytest.mark.sandbox
def test_a_refund_file_with_an_unread_amount_column_sends_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Unread headers: refund_amount refunded in full, even with --skip-invalid (e2e)."""
    sandbox.add_order("RU-1", 10_000, state="captured")
    path = write(tmp_path / "refunds.csv", "order_id,refund_amount\nRU-1,500\n")

    result = run(tmp_path, sandbox, "cancel", path, "--skip-invalid")

    assert result.exit_code == ExitCode.INPUT_REFUSED == 65
    assert result.stderr.splitlines()[-2:] == [
        'Error: refunds.csv: column "refund_amount" (B) looks like amount (its '
        'header holds "amount") but is not a name popbatch reads, and the file has '
        "no amount column: every row would cancel or refund the FULL amount of its "
        "order",
        'Name it "amount" if it holds the values to send as amount; to carry it '
        "through unread, give it a header with none of: amount, amt, price, total, "
        "yen, jpy, 金額, 額, 円, 価格, 代金, 料金, 合計.",
    ]
    assert sandbox.received() == 0


@pytest.mark.sandbox
def test_refund_amounts_under_a_header_with_a_unit_are_refunded_in_part(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Unread headers: 返金額（円） 500 and 300 refund 500 and 300, not everything (e2e)."""
    for order_id in ("RU-1", "RU-2"):
        sandbox.add_order(order_id, 10_000, state="captured")
    path = write(
        tmp_path / "refunds.csv", "order_id,返金額（円）\nRU-1,500\nRU-2,300\n"
    )

    result = run(tmp_path, sandbox, "cancel", path)

    assert result.exit_code == 0, result.stderr
    assert [request.json for request in sandbox.requests()] == [
        {"order_id": "RU-1", "amount": 500, "dummy": True},
        {"order_id": "RU-2", "amount": 300, "dummy": True},
    ]
    assert [sandbox.order(oid).refunded for oid in ("RU-1", "RU-2")] == [500, 300]


@pytest.mark.sandbox
def test_capture_false_under_a_header_with_a_question_mark_is_sent_false(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Unread headers: "Capture?" FALSE was ignored and the API default captured (e2e)."""
    sandbox.add_order("OLD-1", 1000)
    path = write(
        tmp_path / "reauth.csv",
        "order_id,original_order_id,amount,Capture?\nRA-1,OLD-1,1000,FALSE\n",
    )

    result = run(tmp_path, sandbox, "reauthorize", path)

    assert result.exit_code == 0, result.stderr
    assert [request.json for request in sandbox.requests("RA-1")] == [
        {
            "order_id": "RA-1",
            "original_order_id": "OLD-1",
            "amount": 1000,
            "capture": False,
            "dummy": True,
        }
    ]
