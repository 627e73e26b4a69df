"""Normalisation of what people type: headers, ids, amounts, booleans.

Each function here turns one kind of cell text into the one form popbatch
checks and sends, or leaves the text as it was when its meaning is not
clear: validation then rejects it, with a reason from ``explain_amount`` or
the schema. Nothing is guessed. The rules are the README's "Input files"
section, and the case folders under ``tests/data/cases`` show why each one
exists.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from popbatch.io.csvfile import TEXT
from popbatch.operations import Field, FieldKind, Operation
from popbatch.rows import Change

if TYPE_CHECKING:
    from popbatch.io.readers import InputTable

# Header aliases: every spelling that names a field. Headers are matched on
# ``header_key``, so case, width, spaces, "_" and "-" do not matter here.
FIELD_ALIASES: Mapping[str, tuple[str, ...]] = {
    "order_id": (
        *("order_id", "注文番号", "注文ID"),
        *("オーダーID", "取引ID", "受注番号"),
    ),
    "original_order_id": (
        "original_order_id",
        "元注文番号",
        "元注文ID",
        "元オーダーID",
        "元取引ID",
    ),
    "amount": (
        "amount",
        "金額",
        "決済金額",
        "請求金額",
        "売上金額",
        "取引金額",
        "返金額",
        "返金金額",
        "取消金額",
    ),
    "capture": ("capture", "売上確定", "同時売上"),
    "paynow_account_id": ("paynow_account_id", "会員ID", "PayNow会員ID"),
    "paynow_card_id": ("paynow_card_id", "カードID", "PayNowカードID"),
    "paynow_default_card": ("paynow_default_card", "標準カード", "デフォルトカード"),
    "dummy": ("dummy", "ダミー"),
}

# What "trimmed" removes: the spaces str.strip knows (NBSP and the
# ideographic space U+3000 among them), the BOM a UTF-8 file may carry into
# its first header, and the zero-width space.
_EDGES = re.compile(r"^[\s\ufeff\u200b]+|[\s\ufeff\u200b]+$")

_HEADER_JOINERS = re.compile(r"[\s_\-]+")


def trim(text: str) -> str:
    """Return ``text`` without spaces, BOMs or zero-width spaces at either end."""
    return _EDGES.sub("", text)


def header_key(text: str) -> str:
    """Return the form two headers are compared in: NFKC, trimmed, casefolded.

    Spaces, underscores and hyphens are dropped, so ``Order ID``,
    ``order-id`` and ``ＯＲＤＥＲ＿ＩＤ`` all compare equal to ``order_id``.
    """
    folded = trim(unicodedata.normalize("NFKC", text))
    return _HEADER_JOINERS.sub("", folded.casefold())


_FIELD_OF_KEY: dict[str, str] = {
    header_key(alias): field
    for field, aliases in FIELD_ALIASES.items()
    for alias in aliases
}

# A bracketed note at the end or the start of a header: a unit such as （円）,
# (JPY) or [yen], or a remark such as (税込) or 【必須】. NFKC has already
# turned the full-width （） ［］ ｛｝ ＜＞ into ASCII; the brackets Japanese
# text uses besides are listed too.
_OPENING = r"(\[{<【〔〈《「『"
_CLOSING = r")\]}>】〕〉》」』"
_NOTE_AT_END = re.compile(rf"[{_OPENING}][^{_OPENING}{_CLOSING}]*[{_CLOSING}]$")
_NOTE_AT_START = re.compile(rf"^[{_OPENING}][^{_OPENING}{_CLOSING}]*[{_CLOSING}]")
# Marks that templates put around a header ("※金額", "注文番号*", "Capture?").
_HEADER_MARKS = "*※★☆●○◎■□◆◇・:?!."


def field_key(text: str) -> str:
    """Return the form a header is matched to field names in.

    That is ``header_key`` without bracketed notes at its end or start and
    without marks around it, so ``返金額（円）``, ``Amount (JPY)``,
    ``【必須】注文番号`` and ``Capture?`` name amount, order_id and capture.
    A header that is nothing but a note keeps its brackets.
    """
    key = header_key(text)
    while True:
        bare = _NOTE_AT_START.sub("", _NOTE_AT_END.sub("", key)).strip(_HEADER_MARKS)
        if not bare or bare == key:
            return key
        key = bare


def field_for_header(text: str) -> str | None:
    """Return the API field a header names, or None for any other column."""
    return _FIELD_OF_KEY.get(field_key(text))


# Accepted names longest first, so that the longest one a header holds
# decides which field it resembles: 元注文番号2 is original_order_id, not
# order_id.
_NAMES_LONGEST_FIRST: tuple[tuple[str, str, str], ...] = tuple(
    sorted(
        (
            (header_key(alias), field, alias)
            for field, aliases in FIELD_ALIASES.items()
            for alias in aliases
        ),
        key=lambda entry: -len(entry[0]),
    )
)

# Words that make a header look like an optional field (README "Headers").
# A file with no column for the field leaves it out of every request, so
# that POP's default applies; a column whose header holds one of these
# words was most likely meant to be that column. They are looked for in the
# whole header, its bracketed notes too: in 返金（円） the unit is the word.
LOOKALIKE_WORDS: Mapping[str, tuple[str, ...]] = {
    "amount": (
        *("amount", "amt", "price", "total", "yen", "jpy", "¥"),
        *("金額", "額", "円", "価格", "代金", "料金", "合計"),
    ),
    "capture": ("capture", "売上", "確定", "計上"),
    "paynow_card_id": ("card", "カード"),
    "paynow_default_card": ("default", "標準", "デフォルト", "既定"),
    "dummy": ("dummy", "ダミー"),
}

# Words of a refund, a bill or a payment: a header that holds one (返金,
# Refund, 払戻, 入金, 手数料) names money refunded or paid, unless it also
# says it holds something else (``NOT_AMOUNT_WORDS``: 返金理由, refund
# date). An amount word or a unit beside it (返金（円）, refund (JPY)) makes
# it money all the same.
MONEY_WORDS: tuple[str, ...] = (
    *("refund", "cancel"),
    *("返金", "払戻", "払い戻し", "返品"),
    *("キャンセル", "取消", "取り消し", "請求"),
    *("返還", "返戻", "入金", "売上", "支払", "手数料"),
)
# Latin words of money paid or charged, looked for as whole words (with a
# plural), so that "summary" holds no "sum" and "feedback" no "fee".
MONEY_WHOLE_WORDS: tuple[str, ...] = (
    *("chargeback", "credit", "sum", "payment", "paid", "charge", "surcharge"),
    "fee",
)
# Words that say a column holds a reason, a date, a state, a name or an id:
# text, not an amount. Latin ones are whole words (refund_reason,
# "Refund date", refundId), so that "paid" holds no "id".
NOT_AMOUNT_WORDS: tuple[str, ...] = (
    *("理由", "事由", "日", "時刻", "状態", "状況"),
    *("ステータス", "区分", "種別"),
    *("方法", "番号", "者", "担当", "先", "口座", "名", "内容", "詳細", "備考"),
    *("メモ", "コメント", "有無", "可否", "フラグ", "数", "件", "カード"),
    *("reason", "date", "day", "time", "status", "state", "type", "method"),
    *("memo", "note", "notes", "comment", "id", "no", "number", "name", "code"),
    *("flag", "count", "qty", "quantity", "by", "to", "reference", "ref"),
    *("at", "on", "card"),
)
_LATIN_WORD = re.compile(r"[a-z]+")
_CAMEL_CASE = re.compile(r"(?<=[a-z])(?=[A-Z])")


def name_inside(text: str) -> tuple[str, str] | None:
    """Return (field, accepted name) of the longest accepted name in a header.

    For a header that is no accepted name itself but holds one, such as
    ``refund_amount``, ``合計金額`` or ``memo (amount)``; None when it holds
    none.
    """
    key = header_key(text)
    for name, field, alias in _NAMES_LONGEST_FIRST:
        if name in key:
            return field, alias

    return None


def lookalike_word(text: str, field: str) -> str | None:
    """Return the word that makes a header look like a field, or None.

    One of the field's ``LOOKALIKE_WORDS``, anywhere in the header; for
    amount also one of ``MONEY_WORDS`` (or, as a whole word, of
    ``MONEY_WHOLE_WORDS``) in a header that does not say it holds something
    else (``NOT_AMOUNT_WORDS``, looked for beside the money word: 手数料 is
    not 数).
    """
    key = header_key(text)
    for word in LOOKALIKE_WORDS.get(field, ()):
        if header_key(word) in key:
            return word
    if field != "amount":
        return None

    spaced = unicodedata.normalize("NFKC", _CAMEL_CASE.sub(" ", text)).casefold()
    latin = set(_LATIN_WORD.findall(spaced))
    money = next((word for word in MONEY_WORDS if header_key(word) in key), None)
    if money is None:
        whole = (w for word in MONEY_WHOLE_WORDS for w in (word, f"{word}s"))
        money = next((word for word in whole if word in latin), None)
    if money is None or _says_not_amount(spaced.replace(money, " ")):
        return None

    return money


def _says_not_amount(spaced: str) -> bool:
    """Tell whether a header holds one of the ``NOT_AMOUNT_WORDS``.

    ``spaced`` is the header with camelCase split, NFKC and casefolded.
    """
    latin = set(_LATIN_WORD.findall(spaced))
    for word in NOT_AMOUNT_WORDS:
        if word.isascii() and word in latin:
            return True
        if not word.isascii() and word in spaced:
            return True

    return False


def display_header(text: str) -> str:
    """Return a header as messages show it: trimmed of spaces and the BOM."""
    return trim(text)


def column_letter(position: int) -> str:
    """Return the spreadsheet letters of a 0-based column position (0 -> A)."""
    letters = ""
    number = position + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters

    return letters


def escape_invisible(text: str) -> str:
    """Return ``text`` with every character that cannot be seen escaped.

    Control characters, NBSP, the ideographic space and zero-width
    characters become ``\\xa0``-style escapes, so a message shows why two
    values that look alike differ. Visible text, Japanese included, is kept.
    """
    if text.isprintable():
        return text

    return "".join(char if char.isprintable() else _escape(char) for char in text)


_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quote(text: str, *, limit: int = 60) -> str:
    """Return a value quoted for a message: escaped, and shortened past ``limit``."""
    shown = escape_invisible(text)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"

    return f"'{shown}'"


# --- ids -----------------------------------------------------------------

ORDER_ID_PATTERN = r"[A-Za-z0-9_\-]+"
_ORDER_ID = re.compile(ORDER_ID_PATTERN)

# U+FF01..U+FF5E are the full-width forms of ASCII "!".."~", in order.
_FULLWIDTH_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FULLWIDTH_ASCII[0x3000] = 0x20


def fold_fullwidth_ascii(text: str) -> str:
    """Fold full-width ASCII forms (ＷＳ－００７) to ASCII, and nothing else.

    NFKC would also turn circled digits and other compatibility characters
    into ASCII (``WS-①`` into ``WS-1``): a different order id. Only the
    full-width forms an IME types for ASCII are folded here.
    """
    return text.translate(_FULLWIDTH_ASCII)


def normalise_id(text: str) -> str:
    """Return an id trimmed and with full-width ASCII folded."""
    return fold_fullwidth_ascii(trim(text))


def offending_characters(text: str) -> str:
    """Name the characters of an id outside A-Z a-z 0-9 - _, with code points.

    Characters outside ASCII get their code point, which makes look-alikes
    visible: ``'−' U+2212`` is not ``-``.
    """
    seen: list[str] = []
    for char in text:
        if not _ORDER_ID.fullmatch(char) and char not in seen:
            seen.append(char)
    shown = [
        quote(char) if " " <= char <= "~" else f"{quote(char)} U+{ord(char):04X}"
        for char in seen[:5]
    ]
    if len(seen) > 5:
        shown.append("…")

    return ", ".join(shown)


# --- amounts -------------------------------------------------------------

# What an amount cell may hold before NFKC: ASCII, the full-width forms of
# ASCII, the yen signs, 円 and spaces. Anything else (万, ①, Arabic digits)
# has no single reading, so the text is rejected as it is.
_AMOUNT_CHARS = re.compile(r"[\x20-\x7e\uff01-\uff5e\u00a5\uffe5\u5186\s]*")
_AMOUNT_DIGITS = re.compile(r"[0-9]+")
_AMOUNT_GROUPED = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")
_YEN_SIGNS = ("¥", "\\")  # NFKC maps ￥ to ¥; CP932 byte 0x5C decodes as "\"
_NEGATIVE_MARKS = ("-", "−", "▲", "△")
_UNITS = re.compile(r"[万千百億]")
# Characters no way of writing a number uses: text such as "abc" or "=1+1"
# (CSV text is never evaluated) is simply not a number.
_NOT_NUMBER_LIKE = re.compile(r"[^0-9,.\s¥\\円+\-−▲△()eE万千百億]")


def normalise_amount(text: str) -> str | None:
    """Return an amount's digits without leading zeros, "" when blank.

    Accepted: full-width digits (NFKC), one leading ¥ ￥ or \\ or one
    trailing 円, commas that group three digits, one trailing ``.0`` and
    surrounding spaces. None means the text is not clearly one whole
    number: the caller leaves it as it was for validation to reject, and
    ``explain_amount`` says why.
    """
    if not _AMOUNT_CHARS.fullmatch(text):
        return None
    body = unicodedata.normalize("NFKC", text).strip()
    if not body:
        return ""

    if body.startswith(_YEN_SIGNS):
        body = body[1:].lstrip()
    elif body.endswith("円"):
        body = body[:-1].rstrip()
    if body.endswith(".0") and (
        _AMOUNT_DIGITS.fullmatch(body[:-2]) or _AMOUNT_GROUPED.fullmatch(body[:-2])
    ):
        body = body[:-2]

    if _AMOUNT_GROUPED.fullmatch(body):
        body = body.replace(",", "")
    elif not _AMOUNT_DIGITS.fullmatch(body):
        return None

    return body.lstrip("0") or "0"


def explain_amount(text: str) -> tuple[str, str]:
    """Say why ``normalise_amount`` did not read ``text``: (reason, why).

    The reason is a snake_case code; ``why`` completes the sentence
    "amount '…' is not a valid number: …" (or is empty for text that holds
    no digit at all, which is simply not a number).
    """
    body = unicodedata.normalize("NFKC", text).strip()
    if not re.search(r"[0-9]", body) or _NOT_NUMBER_LIKE.search(body):
        return "amount_not_a_number", ""
    if body.startswith(_NEGATIVE_MARKS) or (
        body.startswith("(") and body.endswith(")")
    ):
        return "amount_negative", "a negative amount (amounts are 1 or more)"
    if body.startswith("+"):
        return "amount_invalid", "a sign is not read"
    if _UNITS.search(body):
        return "amount_invalid", "unit characters such as 万 are not read"
    if re.search(r"[0-9][eE][+\-]?[0-9]", body):
        return "amount_invalid", "exponent notation is not read"
    if body.startswith(_YEN_SIGNS) and body.endswith("円"):
        return "amount_invalid", "it has both a yen sign and 円"
    if "." in body:
        return "amount_invalid", _explain_decimal(body)
    if "," in body:
        if re.search(r"(^|[^0-9]),|,($|[^0-9])", body):
            return "amount_invalid", "a stray comma"
        return "amount_invalid", "commas must group three digits (10,000)"

    return "amount_invalid", "only digits, commas, a yen sign and 円 are read"


def _explain_decimal(body: str) -> str:
    match = re.search(r"[0-9]*\.([0-9]+)", body)
    decimals = match.group(1) if match else ""
    if len(decimals) == 3:
        return "a decimal point (it could mean 1 or 1000)"
    if decimals and set(decimals) == {"0"}:
        return "decimals are not read (only a single trailing .0 is)"

    return "not a whole number of yen"


# --- booleans ------------------------------------------------------------

BOOLEAN_SPELLINGS = "true/false or 1/0"
_BOOLEAN_OF_TEXT = {"true": "true", "1": "true", "false": "false", "0": "false"}


def canonical_boolean(text: str) -> str | None:
    """Return "true", "false" or "" (blank) for a boolean cell; None if neither.

    Accepted, in any case and also in full-width forms: true, false, 1, 0.
    Excel's TRUE/FALSE cells are read as that text. A blank is "": the field
    is left out of the request so that the API default applies.
    """
    body = trim(fold_fullwidth_ascii(text)).casefold()
    if not body:
        return ""

    return _BOOLEAN_OF_TEXT.get(body)


def boolean_change(text: str, canonical: str) -> bool:
    """Tell whether reading ``text`` as ``canonical`` is worth showing as a change.

    Letter case alone is not a change (Excel writes TRUE); trimming,
    full-width folding and reading 1/0 as true/false are.
    """
    if not canonical:
        return text != ""

    return text.casefold() != canonical


# --- vectorised helpers ----------------------------------------------------

TextFix = Callable[[str], str | None]


def normalise_column(
    series: pd.Series, *, fast: str, fix: TextFix
) -> tuple[pd.Series, dict[int, str], list[int]]:
    """Apply ``fix`` to every cell that does not fully match the ``fast`` regex.

    Most cells of a large file are already in their final form, so only the
    others go through Python. Returns the new column, the index of each cell
    whose text changed with its new text, and the index of each cell ``fix``
    could not read (None): those keep their text.
    """
    already = series.str.fullmatch(fast).to_numpy(dtype=bool, na_value=False)
    changed: dict[int, str] = {}
    unread: list[int] = []
    if already.all():
        return series, changed, unread

    slow = series[~already]
    for index, text in zip(slow.index.tolist(), slow.tolist(), strict=True):
        fixed = fix(text)
        if fixed is None:
            unread.append(index)
        elif fixed != text:
            changed[index] = fixed
    if not changed:
        return series, changed, unread

    result = series.copy()
    result.loc[list(changed)] = list(changed.values())

    return result, changed, unread


# --- card numbers ----------------------------------------------------------

# What people put between the digits of a card number: spaces of every width
# (NBSP, the ideographic space U+3000, thin spaces), the zero-width space,
# tabs, and dashes with their look-alikes (the hyphens U+2010 to U+2015, the
# minus U+2212, the full-width －, the long-vowel mark ー).
_CARD_SEPARATORS = (
    " \t\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000"
    "\\-\u00ad\u2010-\u2015\u2043\u2212\ufe63\uff0d\u30fc\uff70"
)
# Digits as typed: ASCII, or full-width from a Japanese IME.
_CARD_DIGITS = "0-9\uff10-\uff19"
# 13 digits, each pair separated by at most three separators: the cells
# worth a closer look (``holds_card_number``).
_CARD_CANDIDATE = (
    f"[{_CARD_DIGITS}](?:[{_CARD_SEPARATORS}]{{0,3}}[{_CARD_DIGITS}]){{12}}"
)
_TO_CARD_SPACE = re.compile(f"[{_CARD_SEPARATORS}]")
_CARD_RUN = re.compile(r"(?<![0-9])[0-9](?: {0,3}[0-9])+(?![0-9])")

# Card-brand prefixes and lengths (IIN ranges). Visa's old 13-digit numbers
# are left out on purpose: 13-digit JAN/EAN product codes start with 45 or 49
# and would refuse files with a product-code column.
_CARD_BRANDS: tuple[tuple[tuple[int, int], int, tuple[int, ...]], ...] = (
    ((4, 4), 1, (16, 17, 18, 19)),  # Visa
    ((51, 55), 2, (16,)),  # Mastercard
    ((2221, 2720), 4, (16,)),  # Mastercard 2-series
    ((34, 34), 2, (15,)),  # American Express
    ((37, 37), 2, (15,)),
    ((3528, 3589), 4, (16, 17, 18, 19)),  # JCB
    ((300, 305), 3, (14, 15, 16, 17, 18, 19)),  # Diners Club
    ((36, 36), 2, (14, 15, 16, 17, 18, 19)),
    ((38, 39), 2, (16, 17, 18, 19)),
    ((6011, 6011), 4, (16, 17, 18, 19)),  # Discover
    ((644, 649), 3, (16, 17, 18, 19)),
    ((65, 65), 2, (16, 17, 18, 19)),
    ((62, 62), 2, (16, 17, 18, 19)),  # UnionPay
)


def luhn_valid(digits: str) -> bool:
    """Tell whether a string of digits passes the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value

    return total % 10 == 0


def has_card_prefix(digits: str) -> bool:
    """Tell whether digits start with a card brand's prefix and have its length."""
    for (low, high), width, lengths in _CARD_BRANDS:
        if len(digits) in lengths and low <= int(digits[:width]) <= high:
            return True

    return False


def is_card_number(digits: str) -> bool:
    """Tell whether a digit string is a card number: brand prefix, length, Luhn."""
    return has_card_prefix(digits) and luhn_valid(digits)


def holds_card_number(text: str) -> bool:
    """Tell whether some run of digits in ``text`` is a card number.

    The text is read NFKC-folded, so full-width digits count. Digits may be
    grouped with up to three spaces or dashes of any kind between them
    (4111 1111 1111 1111, ４１１１－１１１１…, 4111\xa01111…).
    """
    folded = _TO_CARD_SPACE.sub(" ", unicodedata.normalize("NFKC", text))
    for match in _CARD_RUN.finditer(folded):
        digits = match.group().replace(" ", "")
        if 13 <= len(digits) <= 19 and is_card_number(digits):
            return True

    return False


def find_card_numbers(series: pd.Series) -> npt.NDArray[np.bool_]:
    """Return a boolean mask of the cells of a text column that hold card numbers."""
    found = np.zeros(len(series), dtype=bool)
    # Only cells of 13 characters or more can hold 13 digits; the regex,
    # the slow part, runs on those alone.
    long = np.flatnonzero((series.str.len() >= 13).to_numpy(dtype=bool, na_value=False))
    if not len(long):
        return found

    candidate = (
        series.iloc[long]
        .str.contains(_CARD_CANDIDATE, regex=True)
        .to_numpy(dtype=bool, na_value=False)
    )
    for position in long[candidate].tolist():
        found[position] = holds_card_number(series.iat[position])

    return found


# --- a table's fields ------------------------------------------------------

_ID_FAST = r"[A-Za-z0-9_\-]{1,100}"


def normalise_fields(
    table: InputTable, operation: Operation, columns: dict[str, int]
) -> tuple[pd.DataFrame, dict[int, tuple[Change, ...]]]:
    """Return the normalised text of every field of a table, and the changes made.

    A field without a column is all blanks. Changes are keyed by the
    table's index and name the column as the input spells it.
    """
    length = len(table.cells)
    work: dict[str, pd.Series] = {}
    found: dict[int, list[Change]] = {}
    for field in operation.fields:
        if field.name not in columns:
            work[field.name] = pd.Series([""] * length, dtype=TEXT)
            continue

        position = columns[field.name]
        text = table.cells[position]
        label = table.header_label(position)
        series, changed = _normalise_field(field, text)
        work[field.name] = series
        for index, after in changed.items():
            found.setdefault(index, []).append(Change(label, text.iat[index], after))

    changes = {index: tuple(items) for index, items in sorted(found.items())}

    return pd.DataFrame(work), changes


def _normalise_field(field: Field, text: pd.Series) -> tuple[pd.Series, dict[int, str]]:
    if field.kind is FieldKind.ORDER_ID:
        series, changed, _ = normalise_column(text, fast=_ID_FAST, fix=normalise_id)
        return series, changed
    if field.kind is FieldKind.PAYNOW_ID:
        series, changed, _ = normalise_column(text, fast=_ID_FAST, fix=trim)
        return series, changed
    if field.kind is FieldKind.AMOUNT:
        series, changed, _ = normalise_column(
            text, fast=r"(?:[1-9][0-9]*)?", fix=normalise_amount
        )
        return series, changed

    series, changed, _ = normalise_column(
        text, fast="true|false|", fix=canonical_boolean
    )
    shown = {
        index: after
        for index, after in changed.items()
        if boolean_change(text.iat[index], after)
    }
    return series, shown
