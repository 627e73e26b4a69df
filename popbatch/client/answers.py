"""How POP's answers are read: one HTTP answer in, one verdict out.

Nothing here touches the network: ``judge_answer`` gets the status, the
headers and the body as the transport read them, and says what they mean,
with the sentence a back-office person reads in the results.

How answers are read, in order (the first that applies wins):

1. HTTP 429 (any body), or 503 with ``Retry-After``: not processed, unless
   the body says that the request was handled (see below).
2. HTTP 401 or 403: not processed, and the batch stops (named after the
   result code when the body is POP JSON with RC17 or RC44). POP refused
   the request before doing anything with it, so the row stays pending;
   again unless the body says that the request was handled.
3. A body cut short or not POP JSON (a JSON object whose ``status`` and
   ``result_code`` are strings, no key given twice, no ``NaN``,
   ``Infinity`` or number out of range), whatever the HTTP status:
   unknown. Under HTTP 404 or 405 a body that is not JSON, or JSON that is
   nothing like POP's, says that the URL is not a POP endpoint: the
   request never reached POP, so the row is not processed, and the batch
   stops (``wrong_endpoint``), since every further row would go the same way.
4. POP JSON, judged by its fields: a result code the operation does not
   know, or another order's ``order_id``, is unknown; ``m_status: pending``
   is unknown; RA01/RD01/RM01 without ``m_status`` and without any field
   of a processed request is not processed; RC17 and RC44 are not
   processed and stop the batch; the success code with ``status: success``
   succeeds; other failures fail.
5. Only HTTP 2xx and 4xx carry such a verdict. Under any other status (a
   5xx other than 503 with ``Retry-After``, a 3xx) POP JSON is unknown
   whatever its fields (``server_error``): a server error may come after
   the request was processed, and money is at stake.

The fields of a processed request are those the API text says only the
gateway returns (``GATEWAY_FIELDS``) and those that describe the card
used (``card_expire`` and the ``paynow_*`` fields of authorize).

An answer that contradicts itself is unknown (``contradictory_answer``):
``status: success`` with any code but the operation's success code (or with
``m_status: failure``, or under an HTTP error status), ``status: failure``
with ``m_status: success`` or with the success code, values of ``status``
or ``m_status`` the API text does not list, a code POP gives before the
gateway (RA01, RD01, RM01 without ``m_status``; RC17, RC44) with a field
of a processed request, and a status that says nothing was processed
(429, 503 with ``Retry-After``, 401, 403, 404, 405) under a JSON body that
says the request was handled (``status: success``, an ``m_status``, a
success code, a field of a processed request). Money may have moved in
each of these, so a person checks.

The server key is masked in every text taken from the answer, after the
body is decoded (see ``bodies``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ReadTimeoutError

from popbatch.client.bodies import (
    NOT_JSON,
    READ_LIMIT,
    Body,
    JsonBody,
    Scrub,
    body_text,
    media_type,
    read_json,
)
from popbatch.operations import OPERATIONS, RESULT_CODES, Operation
from popbatch.retrypolicy import parse_retry_after
from popbatch.rows import OutcomeKind

_NOT_PROCESSED_CODES: Final = frozenset({"RA01", "RD01", "RM01"})
_WRONG_ENDPOINT_STATUSES: Final = frozenset({404, 405})
_M_STATUSES: Final = frozenset({"success", "failure", "pending"})
_SUCCESS_CODES: Final = frozenset(op.success_code for op in OPERATIONS.values())

# Fields that, in the API text's words, come back only from the payment
# gateway: "in case there is an error before request is sent to the Payment
# Gateway, then this parameter value is not returned" (or "returned by
# Payment Gateway"). An answer that carries one reached the gateway.
GATEWAY_FIELDS: Final = (
    "v_result_code",
    "merr_msg",
    "center_error_code",
    "acquirer_code",
    "auth_code",
    "masked_card_number",
    "transaction_datetime",
)

# Fields that, in the API text's words, describe what was done with the
# card: authorize's ``card_expire`` ("the card being used") and the PayNowID
# fields ("the PayNowID operation done during the transaction", "card ID
# used for payment"). Both of the API text's authorize answers that carry
# them carry ``m_status`` too. A code POP gives before the gateway with one
# of them may hide a payment made, whatever the operation.
USED_CARD_FIELDS: Final = (
    "card_expire",
    "paynow_status",
    "paynow_account_id",
    "paynow_card_id",
    "paynow_message",
    "paynow_default_card",
)

PROCESSED_FIELDS: Final = GATEWAY_FIELDS + USED_CARD_FIELDS
"""Fields whose presence says that the request was processed, in API order."""

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
    scrub: Scrub,
) -> tuple[Verdict, dict[str, Any]]:
    """Classify an HTTP answer, status rules first, and keep the evidence.

    ``headers`` are matched without regard to case, as HTTP's are;
    ``scrub`` masks the server key in every text taken from the answer.
    """
    # Scrubbed once here: a header's value may reach a message, quoted.
    headers = CaseInsensitiveDict({name: scrub(v) for name, v in headers.items()})
    content_type = headers.get("Content-Type")
    content, broken, cut = body
    read = NOT_JSON if broken is not None or cut else read_json(content, scrub)
    pop = read.pop

    evidence: dict[str, Any] = {
        "http_status": status,
        "content_type": content_type,
    }
    if pop is None:
        evidence["body_text"] = body_text(content, content_type, cut=cut, scrub=scrub)
    else:
        evidence["response"] = pop
        evidence["result_code"] = pop["result_code"]

    verdict = _classify(
        operation,
        status,
        headers,
        scrub(url),
        body,
        read,
        order_id=order_id,
        original_order_id=original_order_id,
        received_at=received_at,
        read_timeout=read_timeout,
    )
    return verdict._replace(detail=scrub(verdict.detail)), evidence


def _classify(
    operation: Operation,
    status: int,
    headers: Mapping[str, str],
    url: str,
    body: Body,
    read: JsonBody,
    *,
    order_id: str,
    original_order_id: str | None,
    received_at: datetime,
    read_timeout: float,
) -> Verdict:
    """The reading order of the module's docstring."""
    content_type = headers.get("Content-Type")
    pop = read.pop
    # What in the body says that the request was handled, if anything.
    handled = _handled(read.members)

    # A 429, or a 503 with Retry-After, says nothing was done, whatever the
    # body: unless the body says otherwise, and then neither can be believed.
    if status == 429 or (status == 503 and "Retry-After" in headers):
        if handled:
            return _status_contradicted(status, handled)
        header = headers.get("Retry-After")
        after = parse_retry_after(header, received_at)
        return _not_processed(status, after, header)
    if status in (401, 403):
        if handled:
            return _status_contradicted(status, handled)
        return _refused(status, pop)
    if body.broken is not None:
        return _broken_body(
            status, headers, len(body.content), body.broken, operation, read_timeout
        )

    if pop is None:
        if status in _WRONG_ENDPOINT_STATUSES and handled:
            return _status_contradicted(status, handled)
        if status in _WRONG_ENDPOINT_STATUSES and read.flaw is None:
            return _wrong_endpoint(status, content_type, body.content, url)
        return Verdict(
            OutcomeKind.UNKNOWN,
            "not_pop_json",
            _not_pop_json_detail(status, content_type, body, read.flaw),
        )

    verdict = _judge(operation, pop, status, order_id, original_order_id)
    if verdict.kind is OutcomeKind.UNKNOWN or _answers_with(status):
        return verdict
    return _status_in_doubt(status, pop["result_code"])


def _answers_with(status: int) -> bool:
    """Whether POP JSON under HTTP ``status`` is judged by its fields: 2xx, 4xx."""
    return 200 <= status < 300 or 400 <= status < 500


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
    contradiction = _contradiction(operation, said, code, pop, status)
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
    operation: Operation, said: str, code: str, pop: Mapping[str, Any], status: int
) -> str | None:
    """Name what does not fit together in a POP answer, or None."""
    m_status = pop.get("m_status")
    if said not in ("success", "failure"):
        return f"status {said!r} is neither 'success' nor 'failure'"
    # A value of another JSON type (a list, an object) is no status either.
    if m_status is not None and (
        not isinstance(m_status, str) or m_status not in _M_STATUSES
    ):
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

    # The API text: an error before the gateway returns none of the
    # gateway's fields, and no card was used. A code POP gives before the
    # gateway, with one of those fields, may hide a request processed.
    fields = _processed_fields(pop)
    if code in _NOT_PROCESSED_CODES and m_status is None and fields:
        return f"{code} without m_status, but with {_named(fields)}"
    if code in _STOPPING and (m_status is not None or fields):
        shown = [f"m_status {m_status!r}"] if m_status is not None else []
        return (
            f"{code}, an error before the gateway, with {', '.join([*shown, *fields])}"
        )
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

    # The API text: no m_status means the error came before the gateway
    # (an answer with a field of a processed request was put in doubt above).
    if m_status is None and code in _NOT_PROCESSED_CODES:
        return Verdict(
            OutcomeKind.NOT_PROCESSED,
            "pop_error_before_gateway",
            f"POP answered {code} ({meaning}) before reaching the payment gateway; "
            "nothing was processed.",
        )
    if m_status == "failure":
        # Not always a decline of the card: AC38 is an amount above what is
        # authorised, AC45 an unknown order. The reason code stays "declined".
        gateway = pop.get("merr_msg")
        v_code = pop.get("v_result_code")
        said = f": {gateway}" if isinstance(gateway, str) and gateway else ""
        codes = f"{code}, gateway code {v_code}" if isinstance(v_code, str) else code
        return Verdict(
            OutcomeKind.FAILED,
            "declined",
            f"the payment gateway refused it{said} ({codes})",
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


def _processed_fields(pop: Mapping[str, Any]) -> list[str]:
    """The fields of a processed request that ``pop`` carries, in API order."""
    return [name for name in PROCESSED_FIELDS if pop.get(name) is not None]


def _named(fields: list[str]) -> str:
    """The fields for a message: "the gateway's v_result_code and card_expire"."""
    gateway = [name for name in fields if name in GATEWAY_FIELDS]
    others = [name for name in fields if name not in GATEWAY_FIELDS]
    parts = [f"the gateway's {', '.join(gateway)}"] if gateway else []
    parts += [", ".join(others)] if others else []
    return " and ".join(parts)


def _handled(members: tuple[tuple[str, Any], ...]) -> str | None:
    """What in a JSON object says that the request was handled, or None.

    Every member counts, a repeated key's values too: a status that says
    nothing was processed is believed only when no part of the body
    says otherwise.
    """
    found: list[str] = []
    for key, value in members:
        if value is None:
            continue
        if key == "status" and value == "success":
            found.append("status 'success'")
        elif key == "m_status":
            found.append(f"m_status {_short(value)!r}")
        elif (
            key == "result_code" and isinstance(value, str) and value in _SUCCESS_CODES
        ):
            found.append(f"the success code {value}")
        elif key in GATEWAY_FIELDS:
            found.append(f"the gateway's {key}")
        elif key in USED_CARD_FIELDS:
            found.append(key)

    return ", ".join(dict.fromkeys(found)) or None


def _status_contradicted(status: int, handled: str) -> Verdict:
    """A status that says nothing was processed, under a body that says otherwise."""
    return _unsure(
        "contradictory_answer",
        f"POP's answer contradicts itself (HTTP {status} says nothing was "
        f"processed, but the body has {handled})",
    )


def _status_in_doubt(status: int, code: str) -> Verdict:
    """POP JSON under a status that is neither 2xx nor 4xx: unknown."""
    what = "a server error" if 500 <= status < 600 else "not a status POP answers with"
    return _unsure(
        "server_error",
        f"HTTP {status} ({what}) although POP's answer says {code} "
        f"({RESULT_CODES[code]})",
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
    own 404 or 405 page means the path is wrong, so the request never
    reached POP: not processed, and the batch stops.
    """
    shape = (media_type(content_type) or "no content type") if content else "empty body"
    return Verdict(
        OutcomeKind.NOT_PROCESSED,
        "wrong_endpoint",
        f"HTTP {status} from {url}, response is not POP JSON ({shape}): this URL "
        "is not a POP endpoint, so nothing was processed.",
        stops_batch=True,
    )


def _not_pop_json_detail(
    status: int, content_type: str | None, body: Body, flaw: str | None
) -> str:
    if not body.content:
        shape = "empty body"
    else:
        shape = media_type(content_type) or "no content type"
        if body.cut:
            shape += f", over {READ_LIMIT:,} bytes"
        if flaw:
            shape += f", {flaw}"
    if 200 <= status < 300:
        return f"HTTP {status} but the body is not POP JSON ({shape}); {_UNSURE}"
    return f"HTTP {status}, response is not POP JSON ({shape}); {_UNSURE}"


def _unsure(reason: str, what: str) -> Verdict:
    return Verdict(OutcomeKind.UNKNOWN, reason, f"{what}; {_UNSURE}")


def _short(value: object, limit: int = 40) -> object:
    """A value for a message: a long text cut to ``limit`` characters."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value
