"""How the command line sets up logging (popbatch.cli.output.setup_logging)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from popbatch.cli.output import setup_logging


@pytest.fixture(autouse=True)
def _restore_popbatch_logger() -> Iterator[None]:
    """Leave the popbatch logger as the next test expects it."""
    logger = logging.getLogger("popbatch")
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in logger.handlers:
        if handler not in handlers:
            handler.close()
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_debug_records_are_not_built_when_no_handler_shows_them() -> None:
    """Regression (issue 8): the logger stayed at DEBUG, so every request built
    a debug line nobody printed."""
    setup_logging(verbose=0, quiet=False, log_file=None)

    assert not logging.getLogger("popbatch.client").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("popbatch.sender").isEnabledFor(logging.INFO)
    assert logging.getLogger("popbatch.sender").isEnabledFor(logging.WARNING)


def test_a_log_file_takes_one_line_per_row_outcome_at_info(tmp_path: Path) -> None:
    """--log-file keeps the INFO row lines even when stderr shows warnings only."""
    setup_logging(verbose=0, quiet=True, log_file=tmp_path / "run.log")

    assert logging.getLogger("popbatch.sender").isEnabledFor(logging.INFO)
    assert not logging.getLogger("popbatch.client").isEnabledFor(logging.DEBUG)


def test_vv_turns_on_the_masked_request_details() -> None:
    """-vv is how a person sees each request (without the key) on stderr."""
    setup_logging(verbose=2, quiet=False, log_file=None)

    assert logging.getLogger("popbatch.client").isEnabledFor(logging.DEBUG)
