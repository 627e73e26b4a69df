"""Which run a batch's results describe (report.reporting_run)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from popbatch.report import reporting_run
from popbatch.rows import Outcome, OutcomeKind, RowRecord, RowState, RunRecord

JST = timezone(timedelta(hours=9))
MONTH_END = datetime(2026, 11, 30, 22, 0, tzinfo=JST)


def run_at(hour: int, run_id: int) -> RunRecord:
    """A run of batch 1 that started ``hour`` hours after month-end."""
    return RunRecord(
        batch_id=1,
        started_at=MONTH_END + timedelta(hours=hour),
        user="keiri",
        host="batch01",
        version="0.1.0",
        options={},
        finished_at=MONTH_END + timedelta(hours=hour, minutes=5),
        exit_code=0,
        id=run_id,
    )


def sent_row(row: int, hour: float) -> RowRecord:
    """A row whose last request left ``hour`` hours after month-end."""
    sent = MONTH_END + timedelta(hours=hour)
    outcome = Outcome(
        kind=OutcomeKind.SUCCEEDED,
        reason="succeeded",
        detail="captured",
        result_code="R001",
        sent_at=sent,
        received_at=sent + timedelta(milliseconds=80),
    )
    return RowRecord(
        row=row, cells=("A", "1"), state=RowState.SUCCEEDED, outcome=outcome
    )


def test_a_rerun_that_sent_nothing_does_not_become_the_reported_run() -> None:
    """Regression: a no-op re-run rewrote Started/Finished with its own times."""
    runs = [run_at(0, 1), run_at(30, 2)]
    rows = [sent_row(2, 0.01), sent_row(3, 0.02)]

    chosen = reporting_run(runs, rows)

    assert chosen.id == 1


def test_a_resumed_run_that_sent_rows_is_the_reported_run() -> None:
    """After a crash, the run that finished the sending is the one described."""
    runs = [run_at(0, 1), run_at(2, 2), run_at(30, 3)]
    rows = [sent_row(2, 0.01), sent_row(3, 2.5)]

    chosen = reporting_run(runs, rows)

    assert chosen.id == 2


def test_a_batch_that_never_sent_a_row_reports_its_first_run() -> None:
    """Every row rejected or skipped: the first run is the one that planned them."""
    runs = [run_at(0, 1), run_at(1, 2)]
    rows = [RowRecord(row=2, cells=("A",), state=RowState.REJECTED)]

    chosen = reporting_run(runs, rows)

    assert chosen.id == 1


def test_a_batch_without_runs_has_no_results() -> None:
    """The journal always records a run before results are written."""
    with pytest.raises(ValueError, match="a batch without runs has no results"):
        reporting_run([], [])
