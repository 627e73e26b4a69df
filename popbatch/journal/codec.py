"""Row values as the journal stores them: JSON texts and ISO 8601 times.

Every time is stored as ISO 8601 with its UTC offset, exactly as given, so a
report rebuilt from the journal shows the times the run showed. Empty
problems, changes and defaults are stored as NULL, which keeps reading
100,000 rows cheap: most rows have none.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from json.encoder import encode_basestring
from json.scanner import make_scanner
from typing import Any

from popbatch.rows import (
    BatchRecord,
    Change,
    Outcome,
    OutcomeKind,
    Problem,
    Resolution,
    RowRecord,
    RowState,
    RunRecord,
)

STATE_OF = {state.value: state for state in RowState}
_KIND_OF = {kind.value: kind for kind in OutcomeKind}

_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode
# typeshed wants a make_scanner as the context; the scanner only reads the
# decoder's hooks and settings, which a JSONDecoder has.
_scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_quote = encode_basestring
_SURROGATE = re.compile("[\ud800-\udfff]")


def _decode(text: str) -> Any:
    # The scanner alone is about three times faster than json.loads on the
    # short texts of a row, which matters when a report reads 100,000 rows.
    # It stops after the first value; the journal only holds texts it wrote.
    return _scan(text, 0)[0]


_parse_time = datetime.fromisoformat


def local_now() -> datetime:
    """Now, in the local time zone, with its UTC offset."""
    return datetime.now().astimezone()


def dump_json(value: Any) -> str:
    """Compact JSON text; refuses values that are not plain JSON data.

    There is deliberately no fallback that turns an unknown object into its
    ``str``: an object reaching the journal by mistake fails loudly instead
    of being written.
    """
    return _encode(value)


def time_text(moment: datetime | None) -> str | None:
    """ISO 8601 text with the UTC offset; a naive time is a programming error."""
    if moment is None:
        return None
    if moment.utcoffset() is None:
        raise ValueError(
            f"the journal stores times with their UTC offset, got {moment!r}"
        )
    return moment.isoformat()


def parse_time(text: str | None) -> datetime | None:
    """The datetime of a stored ISO 8601 text (None stays None)."""
    return None if text is None else _parse_time(text)


def problems_text(problems: Sequence[Problem]) -> str | None:
    """The problems as a JSON array of objects, or None when there are none."""
    if not problems:
        return None
    return _encode(
        [
            {
                "reason": p.reason,
                "message": p.message,
                "column": p.column,
                "value": p.value,
            }
            for p in problems
        ]
    )


def parse_problems(text: str | None) -> tuple[Problem, ...]:
    """The problems stored by ``problems_text``."""
    if not text:
        return ()
    return tuple(Problem(**item) for item in _decode(text))


def changes_text(changes: Sequence[Change]) -> str | None:
    """The changes as a JSON array of objects, or None when there are none."""
    if not changes:
        return None
    return _encode(
        [{"column": c.column, "before": c.before, "after": c.after} for c in changes]
    )


def parse_changes(text: str | None) -> tuple[Change, ...]:
    """The changes stored by ``changes_text``."""
    if not text:
        return ()
    return tuple(Change(**item) for item in _decode(text))


def outcome_text(outcome: Outcome | None) -> str | None:
    """Every field of ``outcome`` as a JSON object (None stays None).

    The evidence came from the network, and no answer may make the row
    impossible to record: a number JSON cannot hold (NaN, infinity) is
    stored as its text, and a lone surrogate, which SQLite refuses, as its
    escape (see ``evidence_data``).
    """
    if outcome is None:
        return None
    item = {
        "kind": outcome.kind.value,
        "reason": outcome.reason,
        "detail": outcome.detail,
        "result_code": outcome.result_code,
        "response": None if outcome.response is None else dict(outcome.response),
        "http_status": outcome.http_status,
        "content_type": outcome.content_type,
        "body_text": outcome.body_text,
        "retry_after_s": outcome.retry_after_s,
        "stops_batch": outcome.stops_batch,
        "sent_at": time_text(outcome.sent_at),
        "received_at": time_text(outcome.received_at),
        "elapsed_ms": outcome.elapsed_ms,
    }
    try:
        text = _encode(item)
    except ValueError:
        return _encode(evidence_data(item))
    # Checking the whole text once is cheaper than walking every value.
    if _SURROGATE.search(text) is None:
        return text
    return _encode(evidence_data(item))


def evidence_data(value: Any) -> Any:
    """``value``, JSON data from an answer, made storable whatever it holds.

    A float that is not finite becomes its text ("nan", "inf", "-inf"), and
    every string, keys too, has its lone surrogates spelled as escapes
    (``\\ud800``). Anything that is not JSON data is left for the encoder to
    refuse, as ever.
    """
    if isinstance(value, str):
        return _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {
            _plain(k) if isinstance(k, str) else k: evidence_data(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [evidence_data(item) for item in value]
    return value


def _plain(text: str) -> str:
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_outcome(text: str | None) -> Outcome | None:
    """The outcome stored by ``outcome_text``."""
    if text is None:
        return None
    item = _decode(text)
    return Outcome(
        kind=_KIND_OF[item["kind"]],
        reason=item["reason"],
        detail=item["detail"],
        result_code=item.get("result_code"),
        response=item.get("response"),
        http_status=item.get("http_status"),
        content_type=item.get("content_type"),
        body_text=item.get("body_text"),
        retry_after_s=item.get("retry_after_s"),
        stops_batch=item.get("stops_batch", False),
        sent_at=parse_time(item.get("sent_at")),
        received_at=parse_time(item.get("received_at")),
        elapsed_ms=item.get("elapsed_ms"),
    )


# The columns of the rows table besides its id, in the order row_params
# gives their values; parse_row reads "id, " followed by these.
ROW_FIELDS = (
    "batch_id",
    "row",
    "order_id",
    "state",
    "cells",
    "request",
    "amount",
    "problems",
    "changes",
    "defaults",
    "attempts",
    "outcome",
    "resolution_outcome",
    "resolution_note",
    "resolution_by",
    "resolution_at",
    "first_sent_at",
    "finished_at",
)
ROW_COLUMNS = "id, " + ", ".join(ROW_FIELDS)


def row_params(batch_id: int, record: RowRecord) -> tuple[Any, ...]:
    """The values of ``record`` for the columns ROW_FIELDS names."""
    # Empty values skip their encoder: adding 100,000 fresh rows is mostly
    # this function.
    resolution = record.resolution
    first_sent_at = record.first_sent_at
    finished_at = record.finished_at
    return (
        batch_id,
        record.row,
        record.order_id,
        record.state.value,
        cells_text(record.cells),
        record.request,
        record.amount,
        problems_text(record.problems) if record.problems else None,
        changes_text(record.changes) if record.changes else None,
        _encode(dict(record.defaults)) if record.defaults else None,
        record.attempts,
        None if record.outcome is None else outcome_text(record.outcome),
        None if resolution is None else resolution.outcome.value,
        None if resolution is None else resolution.note,
        None if resolution is None else resolution.by,
        None if resolution is None else time_text(resolution.at),
        None if first_sent_at is None else time_text(first_sent_at),
        None if finished_at is None else time_text(finished_at),
    )


def cells_text(cells: Sequence[str]) -> str:
    """The cells as a JSON array of strings; a cell that is not text is refused."""
    # Three C calls instead of the encoder's generic walk: a third the time.
    return "[" + ",".join(map(_quote, cells)) + "]"


def parse_row(values: Sequence[Any]) -> RowRecord:
    """The RowRecord of a SELECT of ROW_COLUMNS."""
    (
        row_id,
        _batch_id,
        row,
        order_id,
        state,
        cells,
        request,
        amount,
        problems,
        changes,
        defaults,
        attempts,
        outcome,
        resolution_outcome,
        resolution_note,
        resolution_by,
        resolution_at,
        first_sent_at,
        finished_at,
    ) = values
    record = RowRecord(
        row=row,
        cells=tuple(_scan(cells, 0)[0]),
        state=STATE_OF[state],
        order_id=order_id,
        request=request,
        amount=amount,
        attempts=attempts,
        id=row_id,
    )
    # Most rows have none of what follows: leave the defaults in place.
    if problems:
        record.problems = parse_problems(problems)
    if changes:
        record.changes = parse_changes(changes)
    if defaults:
        record.defaults = _decode(defaults)
    if outcome is not None:
        record.outcome = parse_outcome(outcome)
    if resolution_outcome is not None:
        record.resolution = Resolution(
            outcome=STATE_OF[resolution_outcome],
            note=resolution_note,
            by=resolution_by,
            at=_parse_time(resolution_at),
        )
    if first_sent_at is not None:
        record.first_sent_at = _parse_time(first_sent_at)
    if finished_at is not None:
        record.finished_at = _parse_time(finished_at)
    return record


BATCH_COLUMNS = (
    "id, key, operation, input_path, input_sha256, input_kind, encoding, delimiter, "
    "sheet, headers, columns, live, endpoint, options, notices, created_at, "
    "finished_at, exit_code"
)


def batch_params(record: BatchRecord) -> tuple[Any, ...]:
    """The values of a new batch for BATCH_COLUMNS without the id."""
    return (
        record.key,
        record.operation,
        record.input_path,
        record.input_sha256,
        record.input_kind,
        record.encoding,
        record.delimiter,
        record.sheet,
        _encode(list(record.headers)),
        _encode(dict(record.columns)),
        int(record.live),
        record.endpoint,
        _encode(dict(record.options)),
        _encode(list(record.notices)),
        time_text(record.created_at),
        time_text(record.finished_at),
        record.exit_code,
    )


def parse_batch(values: Sequence[Any]) -> BatchRecord:
    """The BatchRecord of a SELECT of BATCH_COLUMNS."""
    return BatchRecord(
        id=values[0],
        key=values[1],
        operation=values[2],
        input_path=values[3],
        input_sha256=values[4],
        input_kind=values[5],
        encoding=values[6],
        delimiter=values[7],
        sheet=values[8],
        headers=tuple(_decode(values[9])),
        columns=_decode(values[10]),
        live=bool(values[11]),
        endpoint=values[12],
        options=_decode(values[13]),
        notices=tuple(_decode(values[14])),
        created_at=_parse_time(values[15]),
        finished_at=parse_time(values[16]),
        exit_code=values[17],
    )


RUN_COLUMNS = (
    "id, batch_id, started_at, finished_at, exit_code, user, host, version, options"
)


def run_params(run: RunRecord) -> tuple[Any, ...]:
    """The values of a run for RUN_COLUMNS without the id."""
    return (
        run.batch_id,
        time_text(run.started_at),
        time_text(run.finished_at),
        run.exit_code,
        run.user,
        run.host,
        run.version,
        _encode(dict(run.options)),
    )


def parse_run(values: Sequence[Any]) -> RunRecord:
    """The RunRecord of a SELECT of RUN_COLUMNS."""
    return RunRecord(
        id=values[0],
        batch_id=values[1],
        started_at=_parse_time(values[2]),
        finished_at=parse_time(values[3]),
        exit_code=values[4],
        user=values[5],
        host=values[6],
        version=values[7],
        options=_decode(values[8]),
    )


def mapping_text(value: Mapping[str, Any]) -> str:
    """A mapping as a JSON object text."""
    return _encode(dict(value))
