"""The POP application: from one received request to one answer.

No sockets here. The server hands over the method, endpoint, the two
headers POP reads and the body; it gets back a Reply: status, headers and
body bytes, whether the ledger changed, and any action (close without an
answer, never answer, answer late) for the server to carry out.

Order of checks (the first failure answers): method (RC32), Basic
authentication (RC17), media type (RC30), JSON (RC43), the endpoint's
fields in the order of its request table, dummy (RC26, RC44); then a
scripted answer if one is queued for the order, else the ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from popbatch.sandbox import codes
from popbatch.sandbox.config import ErrorStatus, ReauthorizeEcho, SandboxConfig
from popbatch.sandbox.ledger import Ledger, Outcome
from popbatch.sandbox.script import ScriptBook, ScriptedAnswer
from popbatch.sandbox.seed import ORDER_ID_PATTERN
from popbatch.sandbox.validation import (
    PopRequest,
    Refusal,
    authenticate,
    check_fields,
    is_json_media_type,
    parse_body,
)

JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Call:
    """One request to a POP endpoint, as the application needs it."""

    method: str
    endpoint: str
    content_type: str | None
    authorization: str | None
    body: bytes
    document: dict[str, Any] | None

    @classmethod
    def build(
        cls,
        *,
        method: str,
        endpoint: str,
        content_type: str | None,
        authorization: str | None,
        body: bytes,
    ) -> Call:
        """Make a call, parsing the body once for every later use."""
        return cls(
            method, endpoint, content_type, authorization, body, parse_body(body)
        )

    @property
    def order_id(self) -> str | None:
        """The body's order_id when it is a string, valid or not (for counting)."""
        value = None if self.document is None else self.document.get("order_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Reply:
    """What to send back, and what the server must do besides."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    applied: bool = False
    action: str | None = None
    delay_s: float = 0.0


class PopApplication:
    """The four endpoints over a ledger and a script book."""

    def __init__(
        self, *, config: SandboxConfig, ledger: Ledger, script: ScriptBook
    ) -> None:
        self._config = config
        self._ledger = ledger
        self._script = script

    def handle(
        self,
        call: Call,
        *,
        not_processed: str | None = None,
        not_processed_status: int = 200,
    ) -> Reply:
        """Answer one call; ``not_processed`` (RA01, RD01, RM01) replaces the
        gateway step with that code and no m_status (a fault)."""
        checked = self._check(call)
        if isinstance(checked, Reply):
            return checked
        echo = self._echo_id(call.endpoint, call.document or {})
        if not_processed is not None:
            body = _pop_failure(echo, not_processed, codes.MESSAGES[not_processed])
            always_200 = self._config.error_status is ErrorStatus.ALWAYS_200
            return _json_reply(200 if always_200 else not_processed_status, body)

        scripted = self._script.next_answer(checked.order_id)
        if scripted is not None and scripted.action != "pass":
            return self._scripted(scripted, checked)
        outcome = self._apply(checked)

        # RC3C is decided before the gateway; gateway answers are all HTTP 200.
        status = 200 if outcome.reached_gateway else self._status(outcome.result_code)
        body = _answer(checked, outcome, echo)
        reply = _json_reply(status, body, applied=outcome.applied)
        if scripted is not None and scripted.delay_s:
            return _with_delay(reply, scripted.delay_s)
        return reply

    def _check(self, call: Call) -> PopRequest | Reply:
        """The checked request, or the refusal to answer with."""
        if call.method != "POST":
            message = f"{call.method} method is not supported"
            allow = (("Allow", "POST"),)
            return self._refuse("RC32", None, message=message, extra=allow)
        config = self._config
        merchant = authenticate(call.authorization, config.test_keys, config.live_keys)
        if merchant is None:
            challenge = (("WWW-Authenticate", 'Basic realm="POP"'),)
            return self._refuse("RC17", None, extra=challenge)
        if not is_json_media_type(call.content_type):
            return self._refuse("RC30", None)
        if call.document is None:
            return self._refuse("RC43", None)

        checked = check_fields(call.endpoint, call.document, merchant)
        if isinstance(checked, Refusal):
            echo = self._echo_id(call.endpoint, call.document)
            return self._refuse(checked.result_code, echo)
        return checked

    def _apply(self, request: PopRequest) -> Outcome:
        ledger = self._ledger
        amount = request.amount
        if request.endpoint == codes.CAPTURE:
            assert amount is not None  # check_fields requires it here
            return ledger.capture(request.order_id, amount, dummy=request.dummy)
        if request.endpoint == codes.CANCEL:
            return ledger.cancel(request.order_id, amount, dummy=request.dummy)
        assert amount is not None
        if request.endpoint == codes.REAUTHORIZE:
            assert request.original_order_id is not None
            return ledger.reauthorize(
                request.order_id,
                request.original_order_id,
                amount,
                capture=request.capture,
                dummy=request.dummy,
            )
        assert request.paynow_account_id is not None
        return ledger.authorize(
            request.order_id,
            amount,
            capture=request.capture,
            account_id=request.paynow_account_id,
            card_id=request.paynow_card_id,
            make_default=request.paynow_default_card,
            dummy=request.dummy,
        )

    def _scripted(self, scripted: ScriptedAnswer, request: PopRequest) -> Reply:
        rendered = scripted.render(
            order_id=request.order_id,
            original_order_id=request.original_order_id or "",
            success_code=codes.SUCCESS_CODES[request.endpoint],
        )
        return Reply(
            status=rendered.status,
            headers=rendered.headers,
            body=rendered.body,
            applied=rendered.succeeded,
            action=scripted.action,
            delay_s=scripted.delay_s,
        )

    def _echo_id(self, endpoint: str, document: dict[str, Any]) -> str | None:
        # The reauthorize examples answer with the original order's id.
        field = "order_id"
        if (
            endpoint == codes.REAUTHORIZE
            and self._config.reauthorize_echo is ReauthorizeEcho.ORIGINAL
        ):
            field = "original_order_id"
        value = document.get(field)
        return value if _is_echoable(value) else None

    def _refuse(
        self,
        code: str,
        echo: str | None,
        *,
        message: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> Reply:
        body = _pop_failure(echo, code, message or codes.MESSAGES[code])
        return _json_reply(self._status(code), body, extra=extra)

    def _status(self, code: str) -> int:
        if self._config.error_status is ErrorStatus.ALWAYS_200:
            return 200
        return codes.HTTP_STATUS.get(code, codes.VALIDATION_STATUS)


def _answer(request: PopRequest, outcome: Outcome, echo: str | None) -> dict[str, Any]:
    """The POP JSON for a ledger outcome, with the fields of the text's examples."""
    succeeded = outcome.succeeded
    body: dict[str, Any] = {} if echo is None else {"order_id": echo}
    body["status"] = "success" if succeeded else "failure"
    body["result_code"] = outcome.result_code
    body["message"] = codes.MESSAGES[outcome.result_code]
    if outcome.reached_gateway:
        body["m_status"] = "success" if succeeded else "failure"
        body["v_result_code"] = outcome.v_result_code
        body["merr_msg"] = outcome.merr_msg

    card = outcome.card
    if card is not None:
        if succeeded:
            body["acquirer_code"] = card.acquirer_code
            body["auth_code"] = outcome.auth_code
        body["masked_card_number"] = card.masked_card_number
        if succeeded and request.endpoint == codes.AUTHORIZE:
            body["card_expire"] = card.card_expire
        body["transaction_datetime"] = outcome.transaction_datetime
    if outcome.center_error_code is not None:
        body["center_error_code"] = outcome.center_error_code

    paynow = outcome.paynow
    if paynow is not None:
        body["paynow_status"] = paynow.status
        if paynow.account_id is not None:
            body["paynow_account_id"] = paynow.account_id
        if paynow.card_id is not None:
            body["paynow_card_id"] = paynow.card_id
        body["paynow_message"] = paynow.message
        if paynow.default_card is not None:
            body["paynow_default_card"] = paynow.default_card
    return body


def _pop_failure(echo: str | None, code: str, message: str) -> dict[str, Any]:
    # Before the gateway: no m_status, v_result_code or merr_msg (API text).
    body: dict[str, Any] = {} if echo is None else {"order_id": echo}
    body.update(status="failure", result_code=code, message=message)
    return body


def _is_echoable(value: object) -> bool:
    # Echo only what could be a valid id, never an arbitrary client string.
    return isinstance(value, str) and ORDER_ID_PATTERN.fullmatch(value) is not None


def _json_reply(
    status: int,
    body: dict[str, Any],
    *,
    applied: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> Reply:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )
    return Reply(
        status, (("Content-Type", JSON_TYPE), *extra), payload, applied=applied
    )


def _with_delay(reply: Reply, delay: float) -> Reply:
    return Reply(
        reply.status, reply.headers, reply.body, reply.applied, reply.action, delay
    )
