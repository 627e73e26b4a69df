"""Number options refuse nan, infinities and values no run can mean: exit 2.

click's own float ranges let nan through, and an infinite or huge wait
would reach a socket or a timer and stop the run on an internal error. The
commands run through click's CliRunner; nothing is read or sent.
"""

from __future__ import annotations

import pytest
from harness import Popbatch

USAGE = (
    "Usage: popbatch capture [OPTIONS] FILE\n"
    "Try 'popbatch capture --help' for help.\n"
    "\n"
)

SECONDS_OPTIONS = ("--timeout", "--connect-timeout", "--max-retry-wait")


@pytest.mark.parametrize("option", ["--rate", *SECONDS_OPTIONS])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_a_number_option_that_is_not_finite_is_bad_usage(
    ws: Popbatch, option: str, value: str
) -> None:
    """nan, inf and a number too large for a float: the option and value named."""
    result = ws.invoke("capture", "one.csv", option, value)

    assert result.exit_code == 2
    assert result.stderr == (
        f"{USAGE}Error: Invalid value for '{option}': {value!r} is not a finite "
        "number.\n"
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--rate", "-1", "-1.0 is not in the range x>=0."),
        ("--timeout", "-5", "-5.0 is not in the range 0.1<=x<=3600.0."),
        ("--timeout", "0", "0.0 is not in the range 0.1<=x<=3600.0."),
        ("--connect-timeout", "-0.5", "-0.5 is not in the range 0.1<=x<=3600.0."),
        ("--max-retry-wait", "-1", "-1.0 is not in the range 0<=x<=3600.0."),
        ("--timeout", "1e308", "1e+308 is not in the range 0.1<=x<=3600.0."),
        ("--max-retry-wait", "86400", "86400.0 is not in the range 0<=x<=3600.0."),
        (
            "--rate",
            "1e-300",
            "'1e-300' is too slow: give 0 (no limit) or at least 0.001 requests "
            "per second.",
        ),
        (
            "--rate",
            "1e-400",
            "'1e-400' is too slow: give 0 (no limit) or at least 0.001 requests "
            "per second.",
        ),
    ],
)
def test_a_number_option_out_of_its_range_is_bad_usage(
    ws: Popbatch, option: str, value: str, message: str
) -> None:
    """Negative waits, a zero timeout, waits past an hour, a rate of years."""
    result = ws.invoke("capture", "one.csv", option, value)

    assert result.exit_code == 2
    assert result.stderr == f"{USAGE}Error: Invalid value for '{option}': {message}\n"


@pytest.mark.sandbox
def test_the_bounds_themselves_are_accepted(ws: Popbatch) -> None:
    """0 (no limit), the slowest rate, and waits of exactly an hour run the batch."""
    ws.sandbox.add_order("A-1", 1000)
    path = ws.write("one.csv", "order_id,amount\nA-1,1000\n")

    result = ws.run(
        "capture",
        path,
        "--rate",
        "0.001",
        "--timeout",
        "3600",
        "--connect-timeout",
        "3600",
        "--max-retry-wait",
        "3600",
        "-q",
    )

    assert (result.exit_code, result.output) == (0, "")


@pytest.mark.parametrize(
    "option", ["--latency", "--latency-max", "--fault-503", "--hang-limit"]
)
def test_a_sandbox_number_option_that_is_not_finite_is_bad_usage(
    ws: Popbatch, option: str
) -> None:
    """The sandbox's delays and fault rates refuse nan before it listens."""
    result = ws.invoke("sandbox", option, "nan")

    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"Error: Invalid value for '{option}': 'nan' is not a finite number.\n"
    )
