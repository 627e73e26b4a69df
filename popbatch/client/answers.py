"""How POP's answers are read: one HTTP answer in, one verdict out.

Nothing here touches the network: ``judge_answer`` gets the status, the
headers and the body as the transport read them, and says what they mean,
with the sentence a back-office person reads in the results.

How answers are read, in order (the first that applies wins):

1. HTTP 429 (any body), or 503 with ``Retry-After``: not processed.
2. HTTP 401 or 403: not processed, and the batch stops (named after the
   result code when the body is POP JSON with RC17 or RC44). POP refused
   the request before doing anything with it, so the row stays pending.
3. A body cut short or not POP JSON (a JSON object whose ``status`` and
   ``result_code`` are strings), whatever the HTTP status: unknown. Under
   HTTP 404 or 405 such a body says that the URL is not a POP endpoint:
   the row is unknown all the same, and the batch stops (``wrong_endpoint``),
   since every further row would land in Review the same way.
4. POP JSON, judged by its fields: a result code the operation does not
   know, or another order's ``order_id``, is unknown; ``m_status: pending``
   is unknown; RA01/RD01/RM01 without ``m_status`` is not processed;
   RC17 and RC44 are not processed and stop the batch; the success code
   with ``status: success`` succeeds; other failures fail.

An answer that contradicts itself is unknown (``contradictory_answer``):
``status: success`` with any code but the operation's success code (or with
``m_status: failure``, or under an HTTP error status), ``status: failure``
with ``m_status: success`` or with the success code, and values of
``status`` or ``m_status`` the API text does not list. Money may have moved
in each of these, so a person checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

from urllib3.exceptions import ReadTimeoutError

from popbatch.operations import RESULT_CODES, Operation
from popbatch.retrypolicy import parse_retry_after
from popbatch.rows import OutcomeKind

BODY_TEXT_LIMIT: Final = 32_767
"""Characters of a non-POP body kept as evidence: what one Excel cell holds."""

READ_LIMIT: Final = 1 << 20
"""Bytes of a body read at most; a POP answer is well under 4 KiB."""

_NOT_PROCESSED_CODES: Final = frozenset({"RA01", "RD01", "RM01"})
_WRONG_ENDPOINT_STATUSES: Final = frozenset({404, 405})
_M_STATUSES: Final = frozenset({"success", "failure", "pending"})

# What "may have been made" refers to, in a back-office person's words.
_WHAT: Final = {
    "capture": "the capture",
    "cancel": "the refund",
    "reauthorize": "the payment",
    "authorize": "the payment",
}
_CHECK_ORDER: Final = "Check this order's status before re-running."
CHECK: Final = "Check before re-running."
"""What to do about an outcome that may hide money moved."""

_UNSURE: Final = f"the request may or may not have been processed. {_CHECK_ORDER}"

# Failures after which every further row would fail the same way.
_STOPPING: Final = {
    "RC17": (
        "key_rejected",
        "POP rejected the server key (RC17). Check POP_SERVER_KEY or "
        "--server-key-file.",
    ),
    "RC44": (
        "test_merchant_needs_dummy",
        "POP answered RC44: this is a test merchant, which takes test requests "
        "only. Run without --live, or use the live server key.",
    ),
}


class Body(NamedTuple):
    """A response body as read: what arrived, what cut it short, and whether
    it went past READ_LIMIT."""

    content: bytes
    broken: BaseException | None = None
    cut: bool = False


class Verdict(NamedTuple):
    """What an attempt came to, before the evidence and times are added."""

    kind: OutcomeKind
    reason: str
    detail: str
    stops_batch: bool = False
    retry_after_s: float | None = None


def action_of(operation: Operation) -> str:
    """What "may have been made" refers to for ``operation``: "the capture", ..."""
    return _WHAT.get(operation.name, "the request")


def judge_answer(
    operation: Operation,
    status: int,
    headers: Mapping[str, str],
    url: str,
    body: Body,
    *,
    order_id: str,
    original_order_id: str | None,
    received_at: datetime,
    read_timeout: float,
    scrub: Callable[[str], str],
) -> tuple[Verdict, dict[str, Any]]:
    """Classify an HTTP answer, status rules first, and keep the evidence.

    ``headers`` are matched without regard to case, as HTTP's are;
    ``scrub`` masks the server key in the texts taken from the answer.
    """
    content_type = headers.get("Content-Type")
    content, broken, cut = body
    pop = None if broken is not None or cut else _pop_json(content)

    evidence: dict[str, Any] = {"http_status": status, "content_type": content_type}
    if pop is None:
        evidence["body_text"] = _body_text(content, content_type, cut=cut)
    else:
        evidence["response"] = pop
        evidence["result_code"] = pop["result_code"]

    # A 429, or a 503 with Retry-After, says nothing was done, whatever the body.
    if status == 429 or (status == 503 and "Retry-After" in headers):
        header = headers.get("Retry-After")
        after = parse_retry_after(header, received_at)
        verdict = _not_processed(status, after, header and scrub(header))
    elif status in (401, 403):
        verdict = _refused(status, pop)
    elif broken is not None:
        verdict = _broken_body(
            status, headers, len(content), broken, operation, read_timeout
        )
    elif pop is None and status in _WRONG_ENDPOINT_STATUSES:
        verdict = _wrong_endpoint(status, content_type, content, scrub(url))
    elif pop is None:
        verdict = Verdict(
            OutcomeKind.UNKNOWN,
            "not_pop_json",
            _not_pop_json_detail(status, content_type, content, cut),
        )
    else:
        verdict = _judge(operation, pop, status, order_id, original_order_id)

    return verdict, evidence


def _broken_body(
    status: int,
    headers: Mapping[str, str],
    received: int,
    broken: BaseException,
    operation: Operation,
    read_timeout: float,
) -> Verdict:
    """The headers came, then the body stalled or was cut short."""
    if isinstance(broken, (ReadTimeoutError, TimeoutError)):
        return Verdict(
            OutcomeKind.UNKNOWN,
            "read_timeout",
            f"HTTP {status} arrived, then nothing more within "
            f"{read_timeout:g} s (read timeout); {action_of(operation)} may have "
            f"been made. {CHECK}",
        )

    announced = headers.get("Content-Length", "")
    of = f" of {announced}" if announced.isdigit() else ""
    return Verdict(
        OutcomeKind.UNKNOWN,
        "truncated_body",
        f"HTTP {status}, the response ended early ({received}{of} bytes "
        f"received); {_UNSURE}",
    )


# -- POP JSON ---------------------------------------------------------------------


def _judge(
    operation: Operation,
    pop: Mapping[str, Any],
    status: int,
    order_id: str,
    original_order_id: str | None,
) -> Verdict:
    """Classify a POP JSON answer (DESIGN.md's table, POP rows)."""
    code: str = pop["result_code"]
    said: str = pop["status"]
    m_status = pop.get("m_status")
    answered = pop.get("order_id")

    if code not in operation.known_codes:
        return _unsure(
            "unknown_result_code",
            f"POP answered result code {code!r}, which popbatch does not know "
            f"for {operation.name}",
        )
    if answered is not None and answered not in (order_id, original_order_id):
        return _unsure(
            "order_id_mismatch",
            f"POP answered for order {answered!r}, but {order_id!r} was sent",
        )
    if m_status == "pending":
        return Verdict(
            OutcomeKind.UNKNOWN,
            "gateway_pending",
            f"the payment gateway reports this transaction as pending ({code}); "
            f"it may still complete. {_CHECK_ORDER}",
        )
    contradiction = _contradiction(operation, said, code, m_status, status)
    if contradiction:
        return _unsure(
            "contradictory_answer", f"POP's answer contradicts itself ({contradiction})"
        )

    if said == "success":
        return Verdict(
            OutcomeKind.SUCCEEDED, "succeeded", f"{code} {RESULT_CODES[code]}"
        )
    return _judge_failure(code, m_status, pop)


def _contradiction(
    operation: Operation, said: str, code: str, m_status: object, status: int
) -> str | None:
    """Name what does not fit together in a POP answer, or None."""
    if said not in ("success", "failure"):
        return f"status {said!r} is neither 'success' nor 'failure'"
    if m_status is not None and m_status not in _M_STATUSES:
        return f"m_status {m_status!r} is not one the API text lists"

    if said == "success":
        if code != operation.success_code:
            return (
                f"status 'success' with result code {code}, "
                f"not {operation.success_code}"
            )
        if m_status == "failure":
            return "status 'success' with m_status 'failure'"
        if not 200 <= status < 300:
            return f"status 'success' under HTTP {status}"
        return None

    if m_status == "success":
        return f"status 'failure' ({code}) with m_status 'success'"
    if code == operation.success_code:
        return f"status 'failure' with the success code {code}"
    return None


def _judge_failure(code: str, m_status: object, pop: Mapping[str, Any]) -> Verdict:
    """Classify a POP answer with status failure that is not in doubt."""
    meaning = RESULT_CODES[code]
    if code in _STOPPING:
        # POP refused the request before doing anything with it, so it was
        # not processed: the row stays pending and the same command sends it
        # once the key or the mode is fixed.
        reason, detail = _STOPPING[code]
        return Verdict(OutcomeKind.NOT_PROCESSED, reason, detail, stops_batch=True)

    # The API text: no m_status means the error came before the gateway.
    if m_status is None and code in _NOT_PROCESSED_CODES:
        return Verdict(
            OutcomeKind.NOT_PROCESSED,
            "pop_error_before_gateway",
            f"POP answered {code} ({meaning}) before reaching the payment gateway; "
            "nothing was processed.",
        )
    if m_status == "failure":
        gateway = pop.get("merr_msg")
        v_code = pop.get("v_result_code")
        said = f": {gateway}" if isinstance(gateway, str) and gateway else ""
        codes = f"{code}, gateway code {v_code}" if isinstance(v_code, str) else code
        return Verdict(
            OutcomeKind.FAILED,
            "declined",
            f"declined by the payment gateway{said} ({codes})",
        )
    if code.startswith("RC"):
        return Verdict(
            OutcomeKind.FAILED,
            "invalid_request",
            f"POP refused the request: {code} {meaning}",
        )
    return Verdict(
        OutcomeKind.FAILED, "pop_failure", f"POP answered {code} ({meaning})"
    )


def _not_processed(status: int, after: float | None, header: str | None) -> Verdict:
    """HTTP 429, or 503 with Retry-After: POP did nothing; retry later."""
    if after is not None:
        when = f" (retry after {after:g} s)"
    elif header is not None:
        when = f" (its Retry-After {header!r} could not be read)"
    else:
        when = ""
    reason, said = (
        ("rate_limited", "POP asked to slow down")
        if status == 429
        else ("service_unavailable", "POP is unavailable for now")
    )
    return Verdict(
        OutcomeKind.NOT_PROCESSED,
        reason,
        f"HTTP {status}: {said}{when}; nothing was processed.",
        retry_after_s=after,
    )


def _refused(status: int, pop: Mapping[str, Any] | None) -> Verdict:
    """HTTP 401 or 403: every further row would be refused the same way."""
    code = pop.get("result_code") if pop is not None else None
    if code in _STOPPING:
        reason, detail = _STOPPING[code]
    elif status == 401:
        reason = "http_unauthorized"
        detail = (
            "HTTP 401: POP did not accept the server key. Check POP_SERVER_KEY or "
            "--server-key-file."
        )
    else:
        reason = "http_forbidden"
        detail = (
            "HTTP 403: POP refused access (the server key, or this machine's "
            "address, is not allowed). Check the key and the merchant's settings."
        )
    return Verdict(OutcomeKind.NOT_PROCESSED, reason, detail, stops_batch=True)


def _wrong_endpoint(
    status: int, content_type: str | None, content: bytes, url: str
) -> Verdict:
    """HTTP 404 or 405 with a body that is not POP JSON: the URL is not POP's.

    POP itself answers a wrong method with RC32 in POP JSON; a web server's
    own 404 or 405 page means the path is wrong. The row is unknown, as the
    retry table says of any answer that is not POP JSON, and the batch stops.
    """
    media_type = _media_type(content_type) or "no content type"
    shape = media_type if content else "empty body"
    return Verdict(
        OutcomeKind.UNKNOWN,
        "wrong_endpoint",
        f"HTTP {status} from {url}, response is not POP JSON ({shape}): the "
        f"endpoint looks wrong; {_UNSURE}",
        stops_batch=True,
    )


def _not_pop_json_detail(
    status: int, content_type: str | None, content: bytes, cut: bool
) -> str:
    if not content:
        shape = "empty body"
    else:
        shape = _media_type(content_type) or "no content type"
        if cut:
            shape += f", over {READ_LIMIT:,} bytes"
    if 200 <= status < 300:
        return f"HTTP {status} but the body is not POP JSON ({shape}); {_UNSURE}"
    return f"HTTP {status}, response is not POP JSON ({shape}); {_UNSURE}"


def _unsure(reason: str, what: str) -> Verdict:
    return Verdict(OutcomeKind.UNKNOWN, reason, f"{what}; {_UNSURE}")


# -- bodies -------------------------------------------------------------------------


def _pop_json(content: bytes) -> dict[str, Any] | None:
    """The body as POP JSON: an object whose status and result_code are strings."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    if (
        isinstance(data, dict)
        and isinstance(data.get("status"), str)
        and isinstance(data.get("result_code"), str)
    ):
        return data
    return None


def _body_text(content: bytes, content_type: str | None, *, cut: bool) -> str:
    """The body as text for the Review sheet, capped with a marker."""
    text = _decode(content, content_type)
    if cut:
        marker = (
            f"\n[popbatch: cut here; the body was larger than {READ_LIMIT:,} bytes]"
        )
    elif len(text) > BODY_TEXT_LIMIT:
        marker = f"\n[popbatch: cut here; the body had {len(text):,} characters]"
    else:
        return text
    return text[: BODY_TEXT_LIMIT - len(marker)] + marker


def _decode(content: bytes, content_type: str | None) -> str:
    charset = _charset(content_type)
    if charset:
        try:
            return content.decode(charset, "replace")
        except LookupError:
            pass
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        # Japanese pages without a charset are most often Shift_JIS (as cp932).
        return content.decode("cp932", "replace")


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _media_type(content_type: str | None) -> str | None:
    return (content_type or "").split(";", 1)[0].strip().lower() or None
