"""Tests for popbatch.io.normalise: headers, ids, amounts, booleans, card numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from popbatch.io import normalise as norm

# Case 05's 23 amount notations: (text, digits or None when rejected, reason).
AMOUNTS = [
    ("10000", "10000", None),
    ("10,000", "10000", None),
    ("１０，０００", "10000", None),
    ("￥10,000", "10000", None),
    ("¥1,000", "1000", None),
    ("10000円", "10000", None),
    (" 5000 ", "5000", None),
    ("1 ,", None, "a stray comma"),
    ("1,0000", None, "commas must group three digits (10,000)"),
    ("1.000", None, "a decimal point (it could mean 1 or 1000)"),
    ("1500.5", None, "not a whole number of yen"),
    ("１万", None, "unit characters such as 万 are not read"),
    ("0", "0", None),
    ("100000000", "100000000", None),
    ("99999999", "99999999", None),
    ("1", "1", None),
    ("-500", None, "a negative amount (amounts are 1 or more)"),
    ("１２３４", "1234", None),
    ("1e4", None, "exponent notation is not read"),
    ("10000.0", "10000", None),
    ("\\1,000", "1000", None),
    ("￥2,000", "2000", None),
    ("３，０００円", "3000", None),
]


@pytest.mark.parametrize(("text", "digits", "why"), AMOUNTS)
def test_amount_notations_of_case_05_read_or_explained(
    text: str, digits: str | None, why: str | None
) -> None:
    """Each notation of case 05 gives its digits, or no reading and a reason."""
    result = norm.normalise_amount(text)

    assert result == digits
    if why is not None:
        assert norm.explain_amount(text) == (
            "amount_negative" if text.startswith("-") else "amount_invalid",
            why,
        )


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("", ""),
        ("   ", ""),
        ("\u3000１，０００\u3000", "1000"),
        ("0100", "100"),
        ("1,000.0", "1000"),
        ("¥ 1,000", "1000"),
        ("1000 円", "1000"),
        ("0" * 5000, "0"),
    ],
)
def test_amounts_read_spaces_leading_zeros_and_long_text(
    text: str, digits: str
) -> None:
    """Blanks read as "", spaces around signs are allowed, leading zeros dropped."""
    assert norm.normalise_amount(text) == digits


@pytest.mark.parametrize(
    "text",
    [
        "¥1000円",
        "①000",
        "١٠٠٠",
        "1,000.00",
        "10000.00",
        "1,00",
        "+500",
        "(500)",
        "△500",
    ],
)
def test_amounts_with_more_than_one_reading_are_not_read(text: str) -> None:
    """Both a yen sign and 円, circled or Arabic digits, signs: never guessed."""
    assert norm.normalise_amount(text) is None


@pytest.mark.parametrize(
    ("text", "reason", "why"),
    [
        ("abc", "amount_not_a_number", ""),
        ("=1+1", "amount_not_a_number", ""),
        ("12abc", "amount_not_a_number", ""),
        ("△500", "amount_negative", "a negative amount (amounts are 1 or more)"),
        ("(500)", "amount_negative", "a negative amount (amounts are 1 or more)"),
        ("+500", "amount_invalid", "a sign is not read"),
        ("¥1000円", "amount_invalid", "it has both a yen sign and 円"),
        (
            "10000.00",
            "amount_invalid",
            "decimals are not read (only a single trailing .0 is)",
        ),
    ],
)
def test_amounts_not_read_are_explained(text: str, reason: str, why: str) -> None:
    """The reason says what was wrong, and text without digits is not a number."""
    assert norm.explain_amount(text) == (reason, why)


# Case 11's ten capture cells: text -> "true", "false", "" (blank) or None.
BOOLEANS = [
    ("true", "true"),
    ("FALSE", "false"),
    ("True", "true"),
    (" false ", "false"),
    ("1", "true"),
    ("0", "false"),
    ("yes", None),
    ("はい", None),
    ("ＴＲＵＥ", "true"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "canonical"), BOOLEANS)
def test_booleans_of_case_11_read_or_refused(text: str, canonical: str | None) -> None:
    """true/false in any case and width and 1/0 are read; yes and はい are not."""
    assert norm.canonical_boolean(text) == canonical


@pytest.mark.parametrize(
    ("text", "canonical", "shown"),
    [
        ("TRUE", "true", False),
        ("true", "true", False),
        (" false ", "false", True),
        ("ＴＲＵＥ", "true", True),
        ("1", "true", True),
        ("", "", False),
    ],
)
def test_boolean_changes_shown_except_letter_case(
    text: str, canonical: str, shown: bool
) -> None:
    """Excel's TRUE is not a change; trimming, folding and 1/0 are."""
    assert norm.boolean_change(text, canonical) is shown


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("ＷＳ－００７", "WS-007"),
        ("WS-①", "WS-①"),
        ("ｗｓ＿００７", "ws_007"),
        ("\u3000ORD-1\xa0", "ORD-1"),
        ("\ufeffORD-1\u200b", "ORD-1"),
        ("ORD−1", "ORD−1"),
    ],
)
def test_ids_fold_only_fullwidth_ascii(text: str, folded: str) -> None:
    """Full-width ASCII is folded and edges trimmed; ① and U+2212 stay as they are."""
    assert norm.normalise_id(text) == folded


def test_offending_characters_name_code_points_of_non_ascii_only() -> None:
    """A look-alike minus sign is named with its code point; ASCII is plain."""
    assert norm.offending_characters("A−1 @①") == "'−' U+2212, ' ', '@', '①' U+2460"


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("order_id", "order_id"),
        ("Order ID", "order_id"),
        (" ORDER-ID\u3000", "order_id"),
        ("\ufefforder_id", "order_id"),
        ("ｏｒｄｅｒ＿ｉｄ", "order_id"),
        ("注文番号", "order_id"),
        ("注文ＩＤ", "order_id"),
        ("取引ID", "order_id"),
        ("金額", "amount"),
        ("返金額", "amount"),
        ("元注文番号", "original_order_id"),
        ("元取引ID", "original_order_id"),
        ("同時売上", "capture"),
        ("会員ID", "paynow_account_id"),
        ("Amount\xa0", "amount"),
        ("dummy", "dummy"),
        ("memo", None),
        ("", None),
    ],
)
def test_headers_match_fields_through_aliases(header: str, field: str | None) -> None:
    """Headers match ignoring case, width, edges, spaces, "_" and "-"."""
    assert norm.field_for_header(header) == field


@pytest.mark.parametrize(
    ("position", "letters"),
    [(0, "A"), (1, "B"), (25, "Z"), (26, "AA"), (701, "ZZ"), (702, "AAA")],
)
def test_column_letters_follow_excel(position: int, letters: str) -> None:
    """Column positions are named as Excel names them."""
    assert norm.column_letter(position) == letters


def test_invisible_characters_are_escaped_and_visible_ones_kept() -> None:
    """NBSP, tab, zero-width space and U+3000 show as escapes; Japanese stays."""
    assert (
        norm.escape_invisible("A\xa0B\tC\u200b髙\u3000")
        == "A\\xa0B\\tC\\u200b髙\\u3000"
    )
    assert norm.quote("x" * 100) == "'" + "x" * 59 + "…'"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("4111111111111111", True),
        ("4111 1111 1111 1111", True),
        ("4111-1111-1111-1111", True),
        ("paid with 5555555555554444 on the 3rd", True),
        ("378282246310005", True),
        ("3530111333300000", True),
        ("4111111111111112", False),  # Luhn fails
        ("4901234567894", False),  # a 13-digit JAN code
        ("1234567812345670", False),  # Luhn-valid, no brand prefix
        ("41111111111111111111", False),  # 20 digits
        ("2024-03-01 12345", False),
        ("03-1234-5678", False),
    ],
)
def test_card_numbers_need_brand_length_and_luhn(text: str, found: bool) -> None:
    """A card number has a brand prefix, that brand's length and a Luhn digit."""
    series = pd.Series([text], dtype="str")

    assert norm.find_card_numbers(series).tolist() == [found]


def test_normalise_column_fixes_only_cells_off_the_fast_path() -> None:
    """Cells already in their final form are left alone; others fixed or kept."""
    series = pd.Series(["A-1", " A-2 ", "ＷＳ－００７", "A 3"], dtype="str")

    result, changed, unread = norm.normalise_column(
        series, fast=r"[A-Za-z0-9_\-]+", fix=norm.normalise_id
    )

    assert result.tolist() == ["A-1", "A-2", "WS-007", "A 3"]
    assert changed == {1: "A-2", 2: "WS-007"}
    assert unread == []
