"""The result groups and the summary of a batch, built from its journal records.

``build_report`` is pure: it takes the batch, this run and the batch's rows
as the journal holds them, and returns a ``Report`` that every result file
is written from (``io.writers``), as well as the lines the command line
prints at the end and the ``summary.json`` that monitoring reads.

Every input row lands in exactly one group (``rows.group_of``); the report
counts rows and amounts per group and per result code and checks that they
add up to the input's. A cancel row without an amount refunds the full
amount of its order, which popbatch does not know: such rows are counted
apart from the amounts and named loudly wherever the totals appear.
"""

from __future__ import annotations

import math
import os
import shlex
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from popbatch.config import default_journal_path
from popbatch.errors import ExitCode
from popbatch.journal.model import RowEvent
from popbatch.operations import OPERATIONS, Operation, describe_code
from popbatch.rows import (
    GROUP_ORDER,
    BatchRecord,
    Group,
    RowRecord,
    RowState,
    RunRecord,
)

# Row numbers listed in a sentence before "and N more".
ROWS_NAMED = 20

# Review order ids the end-of-run summary names before "and N more".
ORDERS_NAMED = 10

# The journal events that send a Review row again: --resend-unknown, and a
# row resolved as failed that its batch plans again.
SENT_AGAIN_EVENTS = frozenset({"resend_requested", "replanned"})

# The Failed sheet's reason for a row that POP refused when it was sent again
# after an unknown outcome. POP's codes for "already done" are not in the API
# text, so any refusal may mean that the first request was applied: such a
# row is never put in the retry file.
SENT_AGAIN_REASON = (
    "sent again after Review, and POP refused it: if the first request was "
    "applied, this is why; check the order in the merchant portal before "
    "sending it again"
)

# Reasons shown to people in other words than the client's code. The API
# text never calls a gateway failure a card decline (RM01 is a "Gateway
# Error", RM03 an "MDK Error", and AC38 an amount above the authorisation),
# so popbatch does not either.
SHOWN_REASONS = {"declined": "refused by the payment gateway"}

# The result codes of an error returned by or on the way to the payment
# gateway (API text, Result Codes): one code for many gateway answers, told
# apart by the gateway's own v_result_code.
GATEWAY_RESULT_CODES = frozenset({"RM01", "RM03"})


def shown_reason(reason: str) -> str:
    """A failure's reason code as the results show it to people."""
    return SHOWN_REASONS.get(reason, reason)


@dataclass(frozen=True, slots=True)
class Tally:
    """Rows and yen of a set of rows.

    Args:
        amount: the sum of the request amounts of the rows that have one.
        full_amount_rows: cancel rows without an amount, which cancel or
            refund the full amount of their order (not part of ``amount``).
    """

    rows: int = 0
    amount: int = 0
    full_amount_rows: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.rows + other.rows,
            self.amount + other.amount,
            self.full_amount_rows + other.full_amount_rows,
        )


@dataclass(frozen=True, slots=True)
class CodeTally:
    """The rows of one group that share a result code (or, lacking one, a reason).

    Failed rows that the payment gateway refused are counted per gateway
    code as well (``RM01 / AC38``): one result code covers a card refused,
    an amount above the authorisation and an unknown order.

    Args:
        code: the POP result code, or None when the rows have none.
        label: the code, or popbatch's reason in brackets, e.g. ``(rejected)``
            or ``(read_timeout)``, with the gateway's code after a slash when
            there is one: what the Summary's code column shows.
        meaning: the API text's meaning of the code, POP's own ``merr_msg``
            for a gateway code, or a phrase for a reason.
        v_result_code: the gateway's code, in full, for a gateway refusal.
    """

    group: Group
    code: str | None
    label: str
    meaning: str
    tally: Tally
    v_result_code: str | None = None


@dataclass(frozen=True, slots=True)
class AddingUp:
    """The check that the groups account for every input row and yen.

    Args:
        input: the input's rows, counted once per spreadsheet row number.
        grouped: the sum of the groups.
        rows_read: how many order rows the reader found, when the caller
            knows it; otherwise the number of distinct rows in the journal.
        duplicate_rows: row numbers that more than one record claims.
    """

    input: Tally
    grouped: Tally
    rows_read: int
    duplicate_rows: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the groups hold each input row exactly once."""
        return (
            self.input == self.grouped
            and self.rows_read == self.input.rows
            and not self.duplicate_rows
        )

    def sentence(self) -> str:
        """The check as one sentence for the Summary and the terminal."""
        if self.ok:
            return (
                f"adds up: {rows_phrase(self.grouped.rows)} in the groups = "
                f"{rows_phrase(self.rows_read)} in the input, "
                f"{self.grouped.amount:,} yen = {self.input.amount:,} yen"
            )

        found = []
        if self.rows_read != self.input.rows:
            found.append(
                f"{self.rows_read:,} rows were read but the journal holds "
                f"{self.input.rows:,}"
            )
        if self.duplicate_rows:
            found.append(
                f"rows in more than one record: {name_rows(self.duplicate_rows)}"
            )
        if self.input != self.grouped:
            found.append(
                f"groups hold {self.grouped.rows:,} rows and {self.grouped.amount:,} yen, "
                f"the input {self.input.rows:,} rows and {self.input.amount:,} yen"
            )
        return "DOES NOT ADD UP: " + "; ".join(found)


def rows_phrase(count: int) -> str:
    """``1 row``, ``2 rows``, ``1,200 rows``."""
    return f"{count:,} row" if count == 1 else f"{count:,} rows"


@dataclass(frozen=True, slots=True)
class Timings:
    """When the run happened and how long POP took to answer.

    Args:
        batch_created_at: when the batch was first planned (earlier than
            ``started_at`` when this run resumed it).
        requests: attempts made for the rows, over every run of the batch.
        median_ms: the median answer time of the rows' last attempts.
    """

    batch_created_at: datetime
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    first_sent_at: datetime | None
    last_received_at: datetime | None
    requests: int
    median_ms: int | None
    slowest_ms: int | None


@dataclass(frozen=True)
class Report:
    """Everything the result files say about one batch.

    Args:
        groups: every group in ``GROUP_ORDER``, each with its rows in the
            order the results list them (Failed by result code, then row;
            the others by row).
        tallies: rows and amounts per group.
        codes: rows and amounts per group and result code, in group order.
        total: the sum of every group.
        check: whether the groups add up to the input.
        full_refunds: per group, the row numbers of cancel rows without an
            amount (the full amount of the order is refunded).
        notices: facts about the input reported once (blank rows, sheet).
        sent_again: the journal ids of the rows sent again after Review
            (``--resend-unknown``, or resolved as failed and planned again).
    """

    batch: BatchRecord
    run: RunRecord
    operation: Operation
    exit_code: ExitCode
    groups: Mapping[Group, tuple[RowRecord, ...]]
    tallies: Mapping[Group, Tally]
    codes: tuple[CodeTally, ...]
    total: Tally
    check: AddingUp
    full_refunds: Mapping[Group, tuple[int, ...]]
    timings: Timings
    notices: tuple[str, ...]
    sent_again: frozenset[int] = frozenset()

    @property
    def live(self) -> bool:
        """True when the requests moved real money (no ``dummy: true``)."""
        return self.batch.live

    @property
    def mode(self) -> str:
        """``live`` or ``test``, as the Summary and summary.json say it."""
        return "live" if self.batch.live else "test"

    def refused_after_resend(self, row: RowRecord) -> bool:
        """Whether POP refused ``row`` when it was sent again after Review.

        Such a refusal may say that the first request was applied (an order
        already captured, an order id already used), so the row is not for
        the retry file: a person checks the order first.
        """
        return (
            row.state is RowState.FAILED
            and row.id is not None
            and row.id in self.sent_again
        )

    @property
    def refused_again(self) -> tuple[RowRecord, ...]:
        """The Failed rows that POP refused when they were sent again after Review."""
        return tuple(
            row for row in self.groups[Group.FAILED] if self.refused_after_resend(row)
        )

    @property
    def full_refund_count(self) -> int:
        """How many rows, in every group, refund the full amount of an order."""
        return sum(len(rows) for rows in self.full_refunds.values())


def reporting_run(runs: Sequence[RunRecord], rows: Iterable[RowRecord]) -> RunRecord:
    """The run the results describe: the last one that sent requests.

    A run that resumed a finished batch sends nothing; its results keep the
    times, person and options of the run that did the work, so re-running
    a finished file never rewrites the record of when the money moved.
    """
    if not runs:
        raise ValueError("a batch without runs has no results")
    sent = [
        row.outcome.sent_at
        for row in rows
        if row.outcome is not None and row.outcome.sent_at is not None
    ]
    if not sent:
        return runs[0]
    last = max(sent)
    earlier = [run for run in runs if run.started_at <= last]
    return earlier[-1] if earlier else runs[0]


def build_report(
    batch: BatchRecord,
    run: RunRecord,
    rows: Iterable[RowRecord],
    *,
    exit_code: int,
    rows_read: int | None = None,
    finished_at: datetime | None = None,
    events: Iterable[RowEvent] = (),
) -> Report:
    """Sort a batch's rows into the result groups and count them.

    Args:
        rows: the batch's records, one per order row of the input.
        exit_code: the run's exit code, which the summary explains.
        rows_read: the number of order rows the reader found in the file;
            when given, the adding-up check compares the journal with it.
        finished_at: when the run ended, if ``run`` does not say yet.
        events: the batch's row events (``Journal.events``): they say which
            rows were sent again after Review.

    Raises:
        ValueError: the batch names an operation popbatch does not have.
    """
    operation = _operation(batch.operation)
    members: dict[Group, list[RowRecord]] = {group: [] for group in GROUP_ORDER}
    for row in rows:
        members[row.group].append(row)

    groups = {group: _in_result_order(group, members[group]) for group in GROUP_ORDER}
    full_refunds = {
        group: tuple(row.row for row in groups[group] if is_full_refund(row, operation))
        for group in GROUP_ORDER
    }
    tallies = {group: _tally(groups[group], operation) for group in GROUP_ORDER}
    total = sum(tallies.values(), Tally())
    finished = finished_at or run.finished_at

    return Report(
        batch=batch,
        run=run,
        operation=operation,
        exit_code=ExitCode(exit_code),
        groups=groups,
        tallies=tallies,
        codes=_code_tallies(groups, operation),
        total=total,
        check=_adding_up(groups, operation, total, rows_read),
        full_refunds=full_refunds,
        timings=_timings(batch, run, finished, groups),
        notices=batch.notices,
        sent_again=frozenset(
            event.row_id for event in events if event.kind in SENT_AGAIN_EVENTS
        ),
    )


def is_full_refund(row: RowRecord, operation: Operation) -> bool:
    """True for a cancel row that was or would be sent without an amount.

    The API text (Cancel): "If not set, the full amount will apply." A
    rejected row that never got a request is not counted: it sends nothing.
    """
    if operation.name != "cancel" or row.amount is not None:
        return False
    return row.request is not None or row.defaults.get("amount") == "full"


def _operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise ValueError(
            f"batch operation {name!r} is not one of {', '.join(OPERATIONS)}"
        ) from None


def _in_result_order(group: Group, rows: list[RowRecord]) -> tuple[RowRecord, ...]:
    # Failed rows are read per result code (one CSV each); rows without a
    # code come after those with one.
    if group is Group.FAILED:
        return tuple(sorted(rows, key=lambda row: (_code_key(row), row.row)))
    return tuple(sorted(rows, key=lambda row: row.row))


def _code_key(row: RowRecord) -> tuple[bool, str, str]:
    code = result_code(row)
    gateway = gateway_answer(row)
    return (code is None, code or "", gateway[0] if gateway else "")


def result_code(row: RowRecord) -> str | None:
    """The POP result code of the row's last attempt, if it got one."""
    return row.outcome.result_code if row.outcome is not None else None


def gateway_answer(row: RowRecord) -> tuple[str, str | None] | None:
    """The gateway's ``v_result_code`` and ``merr_msg`` for a refused row, if any.

    The API text returns both only from the payment gateway ("In case there
    is an error before request is sent to the Payment Gateway, then this
    parameter value is not returned"), so a row without them has none.
    """
    outcome = row.outcome
    if outcome is None or outcome.response is None:
        return None
    code = outcome.response.get("v_result_code")
    if not isinstance(code, str) or not code.strip():
        return None
    message = outcome.response.get("merr_msg")
    return code.strip(), message.strip() if isinstance(message, str) else None


def short_gateway_code(code: str) -> str:
    """A gateway code as people quote it: ``AC38`` for ``AC38000000000000``.

    The first four characters name the result; the code is shortened only
    when the rest is zeros, so no two codes read the same.
    """
    head, rest = code[:4], code[4:]
    return head if rest.strip("0") == "" else code


def _tally(rows: Sequence[RowRecord], operation: Operation) -> Tally:
    amount = 0
    full = 0
    for row in rows:
        if row.amount is not None:
            amount += row.amount
        elif is_full_refund(row, operation):
            full += 1
    return Tally(len(rows), amount, full)


def _adding_up(
    groups: Mapping[Group, Sequence[RowRecord]],
    operation: Operation,
    grouped: Tally,
    rows_read: int | None,
) -> AddingUp:
    # The input side counts each spreadsheet row once, whatever records the
    # journal holds for it; a row claimed twice would be counted twice by
    # the groups and so shows up as a difference.
    first: dict[int, RowRecord] = {}
    seen = Counter[int]()
    for rows in groups.values():
        for row in rows:
            seen[row.row] += 1
            first.setdefault(row.row, row)

    duplicates = tuple(sorted(number for number, count in seen.items() if count > 1))
    distinct = _tally(list(first.values()), operation)
    return AddingUp(
        input=distinct,
        grouped=grouped,
        rows_read=rows_read if rows_read is not None else distinct.rows,
        duplicate_rows=duplicates,
    )


def _timings(
    batch: BatchRecord,
    run: RunRecord,
    finished: datetime | None,
    groups: Mapping[Group, Sequence[RowRecord]],
) -> Timings:
    sent: list[datetime] = []
    received: list[datetime] = []
    elapsed: list[int] = []
    requests = 0
    for rows in groups.values():
        for row in rows:
            requests += row.attempts
            outcome = row.outcome
            if outcome is None:
                continue
            if outcome.sent_at is not None:
                sent.append(row.first_sent_at or outcome.sent_at)
            if outcome.received_at is not None:
                received.append(outcome.received_at)
            if outcome.elapsed_ms is not None:
                elapsed.append(outcome.elapsed_ms)

    duration = (finished - run.started_at).total_seconds() if finished else None
    return Timings(
        batch_created_at=batch.created_at,
        started_at=run.started_at,
        finished_at=finished,
        duration_s=duration,
        first_sent_at=min(sent) if sent else None,
        last_received_at=max(received) if received else None,
        requests=requests,
        median_ms=round(statistics.median(elapsed)) if elapsed else None,
        slowest_ms=max(elapsed) if elapsed else None,
    )


def _code_tallies(
    groups: Mapping[Group, Sequence[RowRecord]], operation: Operation
) -> tuple[CodeTally, ...]:
    found: list[CodeTally] = []
    for group in GROUP_ORDER:
        members: dict[tuple[bool, str, str], list[RowRecord]] = {}
        firsts: dict[tuple[bool, str, str], CodeTally] = {}
        for row in groups[group]:
            line = _code_line(group, row)
            key = (line.code is None, line.code or line.label, line.v_result_code or "")
            members.setdefault(key, []).append(row)
            firsts.setdefault(key, line)

        for key in sorted(members):
            tally = _tally(members[key], operation)
            line = replace(firsts[key], tally=tally)
            if line.v_result_code is not None:
                # POP may word one gateway code differently from row to row.
                said = dict.fromkeys(
                    _code_line(group, row).meaning for row in members[key]
                )
                line = replace(line, meaning=" / ".join(said))
            found.append(line)
    return tuple(found)


def _code_line(group: Group, row: RowRecord) -> CodeTally:
    """The Summary's code line ``row`` is counted on, before counting."""
    code = result_code(row)
    gateway = (
        gateway_answer(row)
        if group is Group.FAILED and code in GATEWAY_RESULT_CODES
        else None
    )
    if gateway is not None:
        v_code, message = gateway
        return CodeTally(
            group,
            code,
            f"{code} / {short_gateway_code(v_code)}",
            message or f"{describe_code(code)}; no merr_msg",
            Tally(),
            v_code,
        )
    label = code if code is not None else f"({shown_reason(_reason(group, row))})"
    return CodeTally(group, code, label, _meaning(group, row, code), Tally())


def _reason(group: Group, row: RowRecord) -> str:
    if row.resolution is not None:
        return "settled by hand"
    if group is Group.REJECTED:
        return "rejected"
    if group is Group.SKIPPED:
        return "skipped"
    if row.outcome is None:
        # A row held back (its order is in Review in another batch) says why.
        return row.problems[0].reason if row.problems else "not sent"
    return row.outcome.reason


_NO_CODE = {
    Group.SUCCEEDED: "succeeded without a POP result code",
    Group.FAILED: "failed without a POP result code",
    Group.REJECTED: "never sent: the row did not pass validation",
    Group.REVIEW: "outcome unknown, no POP result code",
    Group.SKIPPED: "never sent: already done in an earlier batch",
    Group.PENDING: "not processed yet: the same command sends it again",
}


def _meaning(group: Group, row: RowRecord, code: str | None) -> str:
    if code is not None:
        return describe_code(code)
    if row.resolution is not None:
        return f"settled as {row.resolution.outcome} by a person after checking"
    if group is Group.PENDING and row.outcome is None:
        if row.problems:
            return f"held, not sent: {row.problems[0].message}"
        return "not sent yet: the run stopped before this row"
    return _NO_CODE[group]


def name_rows(numbers: Sequence[int], limit: int = ROWS_NAMED) -> str:
    """Spreadsheet row numbers for a sentence: ``4, 9, 12 and 30 more``."""
    shown = ", ".join(str(number) for number in numbers[:limit])
    rest = len(numbers) - limit
    return f"{shown} and {rest:,} more" if rest > 0 else shown


def iso_time(moment: datetime | None, *, milliseconds: bool = False) -> str:
    """ISO 8601 in this machine's time zone, with its UTC offset.

    A time without a zone is taken as this machine's local time.
    """
    if moment is None:
        return ""
    if not milliseconds:
        return moment.astimezone().isoformat(timespec="seconds")

    # Result sheets show two times per row; rows sent in the same second
    # share everything but the milliseconds, and converting to the local
    # zone is the slow part, so it is done once per second.
    second = math.floor(moment.timestamp())
    parts = _LOCAL_SECONDS.get(second)
    if parts is None or _LOCAL_SECONDS_ZONE[0] != time.tzname:
        if len(_LOCAL_SECONDS) > 100_000 or _LOCAL_SECONDS_ZONE[0] != time.tzname:
            _LOCAL_SECONDS.clear()
            _LOCAL_SECONDS_ZONE[0] = time.tzname
        text = moment.replace(microsecond=0).astimezone().isoformat()
        parts = _LOCAL_SECONDS[second] = (text[:19], text[19:])
    return f"{parts[0]}.{moment.microsecond // 1000:03d}{parts[1]}"


_LOCAL_SECONDS: dict[int, tuple[str, str]] = {}
_LOCAL_SECONDS_ZONE: list[tuple[str, str]] = [time.tzname]


def describe_duration(seconds: float | None) -> str:
    """A duration a person reads at a glance: ``1 h 02 min 03 s``."""
    if seconds is None:
        return "not finished"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{seconds:.1f} s"


def full_refund_sentence(report: Report) -> str | None:
    """The loud sentence about full-amount cancels, or None when there are none."""
    count = report.full_refund_count
    if not count:
        return None

    parts = [
        f"{len(rows)} {group} (row{'s' if len(rows) > 1 else ''} {name_rows(rows)})"
        for group, rows in report.full_refunds.items()
        if rows
    ]
    noun = "row has" if count == 1 else "rows have"
    return (
        f"FULL REFUNDS: {count:,} cancel {noun} no amount, so POP cancels or "
        f"refunds the FULL amount of the order: {'; '.join(parts)}"
    )


def summary_dict(report: Report, *, folder: Path | None = None) -> dict[str, Any]:
    """What ``summary.json`` holds, for monitoring: counts, amounts, times, exit code.

    Args:
        folder: the results folder, when the results were written.
    """
    batch = report.batch
    timings = report.timings
    return {
        "batch_id": batch.id,
        "operation": report.operation.name,
        "mode": report.mode,
        "live": report.live,
        "input": {
            "path": batch.input_path,
            "sha256": batch.input_sha256,
            "kind": batch.input_kind,
            "encoding": batch.encoding,
            "sheet": batch.sheet,
        },
        "started_at": iso_time(timings.started_at),
        "finished_at": iso_time(timings.finished_at) or None,
        "duration_s": (
            round(timings.duration_s, 3) if timings.duration_s is not None else None
        ),
        "exit_code": int(report.exit_code),
        "exit_meaning": report.exit_code.meaning,
        "rows": report.check.rows_read,
        "groups": {
            group.value.lower(): _tally_dict(report.tallies[group])
            for group in GROUP_ORDER
        },
        "total": _tally_dict(report.total),
        "adds_up": report.check.ok,
        "check": report.check.sentence(),
        "result_codes": [
            {
                "group": line.group.value.lower(),
                "code": line.code,
                "v_result_code": line.v_result_code,
                "label": line.label,
                "meaning": line.meaning,
                **_tally_dict(line.tally),
            }
            for line in report.codes
        ],
        "refused_after_resend": [
            {"row": row.row, "order_id": row.order_id} for row in report.refused_again
        ],
        "full_refund_rows": {
            group.value.lower(): list(rows)
            for group, rows in report.full_refunds.items()
            if rows
        },
        "run_by": f"{report.run.user}@{report.run.host}",
        "version": report.run.version,
        "results_folder": str(folder) if folder is not None else None,
    }


def _tally_dict(tally: Tally) -> dict[str, int]:
    return {
        "rows": tally.rows,
        "amount": tally.amount,
        "full_amount_rows": tally.full_amount_rows,
    }


def summary_lines(
    report: Report, *, folder: Path | None = None, journal: Path | None = None
) -> list[str]:
    """The few plain lines the command line prints on stderr at the end.

    Args:
        folder: the results folder, when the results were written.
        journal: the batch's journal, named in the commands shown when it
            is not the default one.
    """
    mode = (
        f"LIVE: {live_money_phrase(report)}"
        if report.live
        else "test: dummy requests, no money moved"
    )
    lines = [f"popbatch {report.operation.name}, batch {report.batch.id} ({mode})"]
    width = max(len(group.value) for group in GROUP_ORDER)
    for group in GROUP_ORDER:
        lines.append(f"  {group.value:<{width}}  {_tally_text(report.tallies[group])}")
    lines.append(f"  {'Total':<{width}}  {_tally_text(report.total)}")
    lines.append(f"  {report.check.sentence()}")

    refunds = full_refund_sentence(report)
    if refunds:
        lines.append(refunds)
    lines += review_advice(report, journal=journal)
    refused = refused_again_sentence(report)
    if refused:
        lines.append(refused)
    if folder is not None:
        lines.append(f"Results: {folder}")
    lines.append(f"Exit {int(report.exit_code)}: {report.exit_code.meaning}")
    return lines


def refused_again_sentence(report: Report) -> str | None:
    """The line naming the rows POP refused when sent again after Review, or None.

    The end of a run and the Summary's notices both say it: a person who
    "fixes" such a row with a new order id charges or refunds twice when the
    first request was applied.
    """
    rows = report.refused_again
    if not rows:
        return None

    named = _named_orders(rows)
    one = len(rows) == 1
    return (
        f"SENT AGAIN AFTER REVIEW AND REFUSED: {len(rows):,} "
        f"{'row was' if one else 'rows were'} sent again after an unknown outcome, "
        f"and POP refused {'it' if one else 'them'} ({named}). If the first "
        f"request was applied, that is why: check {'the order' if one else 'each order'} "
        "in the merchant portal before sending it again. "
        f"{'It is' if one else 'They are'} in Failed but not in the retry file."
    )


def _named_orders(rows: Sequence[RowRecord]) -> str:
    """``order_id A-1, A-2`` (or rows, for rows without one), ``and N more``."""
    names = [
        f"row {row.row}" if row.order_id is None else str(row.order_id) for row in rows
    ]
    shown = ", ".join(dict.fromkeys(names[:ORDERS_NAMED]))
    rest = len(names) - ORDERS_NAMED
    if rest > 0:
        shown += f" and {rest:,} more"
    return f"order_id {shown}"


def live_money_phrase(report: Report) -> str:
    """What a live batch did with money, from its Succeeded and Review rows.

    Failed, Rejected, Skipped and Pending rows moved nothing in this batch;
    a Review row may have, which is why it is counted apart.
    """
    moved = report.tallies[Group.SUCCEEDED].rows
    unsure = report.tallies[Group.REVIEW].rows
    if moved and unsure:
        return (
            f"real money moved for {rows_phrase(moved)} (Succeeded) and may have "
            f"for {unsure:,} more (Review)"
        )
    if moved:
        return f"real money moved for {rows_phrase(moved)} (Succeeded)"
    if unsure:
        return f"money may have moved for {rows_phrase(unsure)} (Review)"
    return "no money moved"


def journal_option(journal: Path | None) -> str:
    """`` --journal PATH`` for a command shown to a person, or nothing.

    Nothing for the default journal. Any other is named, even when it came
    from POPBATCH_JOURNAL or a config file: the shell where the command is
    typed (not cron's) may not have them, and then the command would find
    another journal's batch of the same number.
    """
    if journal is None:
        return ""
    if os.path.realpath(journal) == os.path.realpath(default_journal_path(os.environ)):
        return ""
    return f" --journal {shlex.quote(str(journal))}"


def review_advice(report: Report, *, journal: Path | None = None) -> list[str]:
    """The lines naming the Review orders and how a person settles them.

    Empty when no row is in Review. The order ids are those of the Review
    sheet, in its order; past ``ORDERS_NAMED`` the rest are counted.
    ``journal`` is named in the commands unless it is the default one.
    """
    rows = report.groups[Group.REVIEW]
    if not rows:
        return []

    order_ids = list(dict.fromkeys(str(row.order_id) for row in rows if row.order_id))
    named = ", ".join(order_ids[:ORDERS_NAMED])
    rest = len(order_ids) - ORDERS_NAMED
    if rest > 0:
        named += f" and {rest:,} more"
    which = f" (order_id {named})" if named else ""
    batch = f"{report.batch.id}{journal_option(journal)}"
    return [
        f"Review rows may or may not have been processed{which}: check them in "
        "the merchant portal before sending them again.",
        f"Then record what the portal shows with 'popbatch resolve {batch} "
        "ORDER_ID --succeeded|--failed --note TEXT' (or 'popbatch resolve "
        f"{batch} --file CSV' for many) and run this command again; if the portal "
        "shows none of them, this command with --resend-unknown sends them all "
        "again.",
    ]


def _tally_text(tally: Tally) -> str:
    text = f"{tally.rows:>7,} row{'s' if tally.rows != 1 else ' '}  {tally.amount:>14,} yen"
    if tally.full_amount_rows:
        text += f" + {tally.full_amount_rows:,} FULL-amount refund(s)"
    return text
