"""Excel number formats, as far as popbatch needs them: dates, digits, numbers.

A workbook stores a number and, apart from it, the format that decides how
Excel shows it. popbatch reads the number, and looks at the format only to
tell whether the cell is a date, and whether the digits a person sees are
the stored number's own (an id 123 formatted 000000 is shown as 000123).
Nothing here decides a value by rendering a format: guessing what Excel
displays is exactly what the reading rules avoid. ``format_changes_value``
only tells when a format shows another number than the one stored (and, for
the message, roughly what Excel shows), so that such a cell is rejected.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

# Excel keeps 15 significant digits of a number: longer ids typed as
# numbers have already lost their last digits.
SIGNIFICANT_DIGITS = 15

# Built-in number formats that Excel does not write out (ECMA-376, 18.8.30).
# 5-8, 23-36 and 50-58 depend on the locale; in Japanese Excel 27-36 and
# 50-58 are dates (年 月 日, era years) and 5-8 are yen currency.
BUILTIN_FORMATS = {
    0: "General",
    1: "0",
    2: "0.00",
    3: "#,##0",
    4: "#,##0.00",
    5: '"¥"#,##0;"¥"-#,##0',
    6: '"¥"#,##0;[Red]"¥"-#,##0',
    7: '"¥"#,##0.00;"¥"-#,##0.00',
    8: '"¥"#,##0.00;[Red]"¥"-#,##0.00',
    9: "0%",
    10: "0.00%",
    11: "0.00E+00",
    12: "# ?/?",
    13: "# ??/??",
    14: "yyyy/m/d",
    15: "d-mmm-yy",
    16: "d-mmm",
    17: "mmm-yy",
    18: "h:mm AM/PM",
    19: "h:mm:ss AM/PM",
    20: "h:mm",
    21: "h:mm:ss",
    22: "yyyy/m/d h:mm",
    37: "#,##0 ;(#,##0)",
    38: "#,##0 ;[Red](#,##0)",
    39: "#,##0.00;(#,##0.00)",
    40: "#,##0.00;[Red](#,##0.00)",
    45: "mm:ss",
    46: "[h]:mm:ss",
    47: "mm:ss.0",
    48: "##0.0E+0",
    49: "@",
}
BUILTIN_DATES = frozenset({*range(14, 23), *range(27, 37), 45, 46, 47, *range(50, 59)})


def number_text(value: str) -> tuple[str, bool, bool]:
    """Return a number cell's text, whether it is whole, and whether it is too long.

    A whole number is written without ``.0`` (10000.0 -> "10000"); others
    as Excel shows them, to 15 significant digits. A whole number of more
    than 15 digits is shown rounded to the 15 digits Excel kept, and
    flagged: its last digits are gone.
    """
    try:
        number = float(value)
    except ValueError:
        return value, False, False
    if not math.isfinite(number):
        return value, False, False
    if not number.is_integer():
        return format(number, ".15g"), False, False
    if abs(number) < 10**SIGNIFICANT_DIGITS:
        return str(int(number)), True, False

    return str(int(Decimal(format(number, f".{SIGNIFICANT_DIGITS}g")))), True, True


_QUOTED = re.compile(r'"[^"]*"')
_BRACKETS = re.compile(r"\[[^\]]*\]")
_ELAPSED = re.compile(r"\[(h+|m+|s+)\]", re.IGNORECASE)
_COLOURS = re.compile(
    r"\[(black|blue|cyan|green|magenta|red|white|yellow|color ?[0-9]+|\$-[0-9a-f]+)\]",
    re.IGNORECASE,
)


def is_date_format(code: str) -> bool:
    """Tell whether a number format code shows dates or times (yyyy, m, d, h, s...)."""
    if _ELAPSED.search(code):
        return True
    body = _BRACKETS.sub("", _QUOTED.sub("", code))
    body = re.sub(r"\\.|_.|\*.", "", body)
    body = re.sub(r"general", "", body, flags=re.IGNORECASE)
    body = re.sub(r"[eE][+\-]", "", body)

    # y m d h s are Excel's date and time letters; g and e are Japanese era
    # names and years (ggge), b Buddhist years; AM/PM makes a time.
    return bool(re.search(r"[ymdhsgeb]|am/pm|a/p", body, re.IGNORECASE))


def _section(code: str, negative: bool) -> str:
    sections = re.split(r';(?=(?:[^"]*"[^"]*")*[^"]*$)', code)
    return sections[1] if negative and len(sections) > 1 else sections[0]


def format_hides_digits(code: str, digits: int) -> str:
    """Tell how a number format changes how a whole number's digits show.

    Returns "" when the cell shows its own digits (General, ``0``,
    ``#,##0``, text ``@``), ``leading_zeros`` when the format pads it with
    zeros (``000000``), or ``other`` when it shows other characters
    (decimals, a currency sign, literal text, a percent sign).
    """
    body = _section(code, negative=False)
    if body.strip().casefold() in ("general", "@", ""):
        return ""

    body = _COLOURS.sub("", body)
    body = re.sub(r"_.|\*.", "", body)  # padding and fill characters
    body = body.replace(" ", "")
    if body.casefold() in ("general", "@"):
        return ""
    if not re.fullmatch(r"[0#?,]*[0#?]", body):
        return "other"
    if body.count("0") > digits:
        return "leading_zeros"

    return ""


# --- formats that show another number ------------------------------------

# One token of a format code: a quoted text, an escaped character, padding
# (_x) or fill (*x), a bracketed colour, currency, locale or condition,
# General, an exponent, a digit placeholder, or any one other character.
_TOKEN = re.compile(
    r'"[^"]*"?|\\.|_.|\*.|\[[^\]]*\]?|general|[eE][+\-]|.', re.IGNORECASE | re.DOTALL
)
# [$¥-411]: a currency symbol (¥) and a locale; [$-411]: a locale alone.
_CURRENCY = re.compile(r"\[\$([^\-\]]*)(?:-[^\]]*)?\]")
# Words in a format's text that multiply what the digits say: 5 shown as
# "5千円" or "5k" means 5,000.
_MULTIPLIERS = re.compile(
    r"[万千百億兆十%‰]|(?<![a-z])(?:k|m|mm|mn|b|bn|thousands?|millions?|billions?)(?![a-z])"
)

# Why a format shows another number, completing "... shows it as X in Excel
# (why)"; the keys are what ``format_changes_value`` returns.
WHY_SHOWN = {
    "hidden": "the format hides the value",
    "text": "the format shows text in place of the number",
    "scaled": "a comma at the end of the format divides it by 1,000",
    "percent": "% multiplies it by 100",
    "digits": "the format adds digits of its own",
    "unit": "the format adds a unit that multiplies it",
    "between": "the format puts text between the digits",
    "other": "the format shows it in another form: an exponent, a fraction, "
    "a condition or other numerals",
}


def _sections(code: str) -> list[list[str]]:
    """Split a format code into its sections (positive; negative; zero; text)."""
    sections: list[list[str]] = [[]]
    for token in _TOKEN.findall(code):
        if token == ";":
            sections.append([])
        else:
            sections[-1].append(token)

    return sections


def _chosen(code: str, sign: int) -> tuple[list[str], bool]:
    """Return the section Excel uses for a number of that sign, and if it is signed.

    One section serves every number, with a minus sign Excel adds; with two,
    the second is for negative numbers (and shows no sign of its own); with
    three or more, the third is for zero.
    """
    sections = _sections(code)
    if sign < 0 and len(sections) > 1:
        return sections[1], False
    if sign == 0 and len(sections) > 2:
        return sections[2], False

    return sections[0], sign < 0


def _literal(token: str) -> str | None:
    """Return the text a token shows as it is, or None for a token that is no text."""
    if token.startswith('"'):
        return token[1:-1] if len(token) > 1 and token.endswith('"') else token[1:]
    if token.startswith("\\"):
        return token[1:]
    if token.startswith("["):
        currency = _CURRENCY.fullmatch(token)
        return currency.group(1) if currency else None
    if len(token) == 1 and token not in "0#?,.%/@":
        return token

    return None


@lru_cache(maxsize=1024)
def classify_format(code: str, sign: int) -> str:
    """Tell how a format shows a whole number of that sign (1, 0 or -1).

    Returns "" when it shows the stored number itself, with or without
    grouping commas, decimals of zeros, leading zeros, a currency sign or a
    unit such as 円; else a key of ``WHY_SHOWN``.
    """
    tokens, _ = _chosen(code, sign)
    placeholders = [t for t in tokens if t in ("0", "#", "?")]
    general = any(t.casefold() in ("general", "@") for t in tokens)
    texts = [text for text in map(_literal, tokens) if text is not None]
    shown_text = unicodedata.normalize("NFKC", "".join(texts)).casefold()

    for token in tokens:
        if token.startswith("*") and token[1:].isdigit():
            return "digits"
        if token == "/" or (token[:1] in ("e", "E") and token[1:] in ("+", "-")):
            return "other"
        if (
            token.startswith("[")
            and not _COLOURS.fullmatch(token)
            and not _CURRENCY.fullmatch(token)
        ):
            return "other"
    if not general and (not placeholders or (sign == 0 and "0" not in placeholders)):
        return "text" if shown_text.strip() else "hidden"
    if any(
        token == ","
        and _after_digits(tokens, index)
        and not _before_digit(tokens, index)
        for index, token in enumerate(tokens)
    ):
        return "scaled"
    if "%" in tokens:
        return "percent"
    if re.search(r"[0-9]", shown_text):
        return "digits"
    if _text_between_digits(tokens):
        return "between"
    if _MULTIPLIERS.search(shown_text):
        return "unit"

    return ""


def _text_between_digits(tokens: list[str]) -> bool:
    """Tell whether anything shown sits between two digit placeholders.

    ``#,##0"."00`` shows 150000 as 1,500.00 and ``0\\ 000`` 1234 as 1 234:
    a quoted or escaped character, a padding or fill, a currency sign or any
    other literal between the digits makes them read as another number (or
    as two). Only grouping commas and the first decimal point may sit there.
    """
    placeholders = [i for i, t in enumerate(tokens) if t in ("0", "#", "?")]
    if len(placeholders) < 2:
        return False
    inside = tokens[placeholders[0] + 1 : placeholders[-1]]
    points = [t for t in inside if t == "."]
    if len(points) > 1:
        return True
    for token in inside:
        if token in ("0", "#", "?", ",", "."):
            continue
        if token[:1] in ("_", "*"):
            return True
        text = _literal(token)
        if text:
            return True

    return False


def _after_digits(tokens: list[str], index: int) -> bool:
    """Tell whether a digit placeholder comes before ``tokens[index]``."""
    return any(t in ("0", "#", "?") for t in tokens[:index])


def _before_digit(tokens: list[str], index: int) -> bool:
    """Tell whether a digit placeholder comes right after ``tokens[index]``.

    A comma between placeholders groups thousands; one after the last
    placeholder divides the number by 1,000 (``#,##0,``).
    """
    following = tokens[index + 1 : index + 2]
    return bool(following) and following[0] in ("0", "#", "?")


def format_changes_value(code: str, value: int) -> tuple[str, str | None] | None:
    """Tell whether a format shows a whole number as another number.

    Returns None when Excel shows the stored number itself (``#,##0``,
    ``¥#,##0``, ``#,##0 "円"``), else (key of ``WHY_SHOWN``, what Excel
    shows): 5000000 formatted ``#,##0,`` shows ``5,000``. What it shows is
    for the message only, and None when popbatch cannot tell.
    """
    sign = (value > 0) - (value < 0)
    why = classify_format(code, sign)
    if not why:
        return None

    return why, render_whole(code, value)


def render_whole(code: str, value: int) -> str | None:
    """Return roughly what Excel shows for a whole number, or None if unsure.

    For messages: digit placeholders, grouping and scaling commas, decimals,
    percent signs and text are rendered; exponents, fractions, conditions
    and other numerals are not.
    """
    sign = (value > 0) - (value < 0)
    if classify_format(code, sign) == "other":
        return None
    tokens, signed = _chosen(code, sign)
    point = tokens.index(".") if "." in tokens else len(tokens)
    whole = [i for i, t in enumerate(tokens[:point]) if t in ("0", "#", "?")]
    decimals = [t for t in tokens[point:] if t in ("0", "#", "?")]
    scale = sum(
        1
        for i, t in enumerate(tokens)
        if t == "," and _after_digits(tokens, i) and not _before_digit(tokens, i)
    )
    grouped = any(
        t == "," and _after_digits(tokens, i) and _before_digit(tokens, i)
        for i, t in enumerate(tokens[:point])
    )
    number = Decimal(abs(value)) * 100 ** tokens.count("%") / 1000**scale
    number = number.quantize(Decimal(1).scaleb(-len(decimals)), rounding=ROUND_HALF_UP)
    integer, _, fraction = format(number, "f").partition(".")
    integer = integer.lstrip("0")
    shown = _fill_whole([tokens[i] for i in whole], integer)
    filled = dict(zip(whole, shown, strict=True))
    runs = _digit_runs(tokens, whole)
    shown_at = {run[-1]: _run_text(tokens, run, filled, grouped) for run in runs}

    parts: list[str] = ["-"] if signed else []
    for index, token in enumerate(tokens):
        if index in whole:
            parts.append(shown_at.get(index, ""))
        elif token.casefold() in ("general", "@"):
            parts.append(format(number.normalize(), "f"))
        elif token == "." and decimals:
            parts.append(".")
        elif index > point and token in ("0", "#", "?"):
            parts.append(fraction[:1] or "0")
            fraction = fraction[1:]
        elif token.startswith("_"):
            parts.append(" ")
        elif token == "%":
            parts.append("%")
        else:
            text = _literal(token)
            if text is not None:
                parts.append(text)

    return "".join(parts)


def _digit_runs(tokens: list[str], whole: list[int]) -> list[list[int]]:
    """Split the whole-number placeholders where text sits between them.

    In ``#,##0"."00`` the runs are ``#,##0`` and ``00``: each shows its own
    digits, and grouping commas group the digits of their own run.
    """
    runs: list[list[int]] = []
    for index in whole:
        between = tokens[runs[-1][-1] + 1 : index] if runs else []
        if runs and all(t == "," for t in between):
            runs[-1].append(index)
        else:
            runs.append([index])

    return runs


def _run_text(
    tokens: list[str], run: list[int], filled: dict[int, str], grouped: bool
) -> str:
    """Return the digits a run of placeholders shows, grouped by thousands."""
    text = "".join(filled[index] for index in run)
    commas = any(t == "," for t in tokens[run[0] : run[-1]])
    digits = text.lstrip(" ")
    if not (grouped and commas and digits):
        return text
    groups = [digits[max(0, end - 3) : end] for end in range(len(digits), 0, -3)]

    return text[: len(text) - len(digits)] + ",".join(reversed(groups))


def _fill_whole(placeholders: list[str], integer: str) -> list[str]:
    """Return the digits each whole-number placeholder shows, left to right."""
    shown = []
    rest = integer
    for index, placeholder in enumerate(reversed(placeholders)):
        last = index == len(placeholders) - 1
        if rest:
            shown.append(rest if last else rest[-1])
            rest = "" if last else rest[:-1]
        else:
            shown.append({"0": "0", "#": "", "?": " "}[placeholder])

    return list(reversed(shown))


_EPOCH_1900 = datetime(1899, 12, 30)
_EPOCH_1904 = datetime(1904, 1, 1)


def serial_to_iso(value: str, *, date1904: bool = False) -> str:
    """Return a date cell's serial number as ISO 8601 text.

    ``2024-03-01`` for a whole day, ``2024-03-01T12:30:00`` with a time,
    ``12:30:00`` for a time alone. Excel's 1900 calendar counts a 29
    February 1900 that never was; serials before it are shifted back.
    """
    try:
        serial = float(value)
    except ValueError:
        return value
    if not math.isfinite(serial) or not -1e7 < serial < 1e7:
        return value
    if 0 <= serial < 1:
        return (datetime.min + timedelta(seconds=round(serial * 86400))).strftime(
            "%H:%M:%S"
        )
    if not date1904 and serial < 61:
        if serial >= 60:
            return "1900-02-29"
        serial += 1

    moment = (_EPOCH_1904 if date1904 else _EPOCH_1900) + timedelta(
        seconds=round(serial * 86400)
    )
    if moment.time() == datetime.min.time():
        return moment.date().isoformat()

    return moment.isoformat()
