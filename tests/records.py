"""Journal records made by hand, for the tests of the results and their files.

``batch_record`` and ``run_record`` give a capture batch 12, read from a
cp932 CSV with order_id, amount and memo columns, and its run by alice on
box1; a test changes what it is about with keywords. Only popbatch.rows is
imported here, so that code outside the test suite may use these too.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from popbatch.rows import BatchRecord, RunRecord

T0 = datetime(2026, 1, 31, 14, 0, tzinfo=UTC)  # 23:00 in Tokyo


def batch_record(**changes: Any) -> BatchRecord:
    """Batch 12: a capture of a cp932 CSV with order_id, amount and memo columns."""
    batch = BatchRecord(
        id=12,
        key="key",
        operation="capture",
        input_path="/data/2026-01/月末.csv",
        input_sha256="ab" * 32,
        input_kind="csv",
        encoding="cp932",
        delimiter=",",
        sheet=None,
        headers=("order_id", "amount", "memo"),
        columns={"order_id": 0, "amount": 1},
        live=False,
        endpoint="http://127.0.0.1:8080/pop/v1",
        options={"rate": 5.0},
        created_at=T0,
    )
    return replace(batch, **changes)


def run_record(**changes: Any) -> RunRecord:
    """Batch 12's run, by alice on box1, an hour and five seconds long."""
    run = RunRecord(
        batch_id=12,
        started_at=T0,
        user="alice",
        host="box1",
        version="0.1.0",
        options={"rate": 5.0},
        finished_at=T0 + timedelta(hours=1, seconds=5),
    )
    return replace(run, **changes)
