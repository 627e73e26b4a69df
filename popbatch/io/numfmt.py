"""Excel number formats, as far as popbatch needs them: dates, digits, numbers.

A workbook stores a number and, apart from it, the format that decides how
Excel shows it. popbatch reads the number, and looks at the format only to
tell whether the cell is a date, and whether the digits a person sees are
the stored number's own (an id 123 formatted 000000 is shown as 000123).
Nothing here renders a format: guessing what Excel displays is exactly what
the reading rules avoid.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from decimal import Decimal

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
