"""The POP client: one request in, one classified :class:`~popbatch.rows.Outcome` out.

Each worker thread owns one :class:`PopClient`, which owns one
``requests.Session``. ``send`` never raises for a transport or server
problem: every case of DESIGN.md's "When to retry" table becomes an
outcome, and what to do next is for ``retrypolicy`` to say.

Two rules shape this module, because POP has no idempotency key:

- Nothing is ever re-sent here. The session's adapter has a urllib3
  ``Retry`` that allows no retry at all (``total=0``, ``read=False``), so a
  POST dropped after it left is reported, not replayed.
- Transport errors are translated in one place, ``_transport_verdict``.
  requests raises the same ``ConnectionError`` for "nothing was sent" and
  "dropped after sending"; the urllib3 error underneath tells them apart.

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

The server key never leaves this module except in the Authorization
header: texts taken from the network or from exceptions are scrubbed of
it (plain, base64, and URL-encoded) before they reach an outcome or a log.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, NamedTuple
from urllib.parse import quote

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    LocationValueError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ProxyError as Urllib3ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.response import HTTPResponse
from urllib3.util import Retry, parse_url

from popbatch import __version__
from popbatch.config import ServerKey, Timeouts
from popbatch.errors import ConfigurationError
from popbatch.operations import OPERATIONS, RESULT_CODES, Operation
from popbatch.retrypolicy import parse_retry_after
from popbatch.rows import Outcome, OutcomeKind

logger = logging.getLogger(__name__)

USER_AGENT: Final = f"popbatch/{__version__}"

BODY_TEXT_LIMIT: Final = 32_767
"""Characters of a non-POP body kept as evidence: what one Excel cell holds."""

READ_LIMIT: Final = 1 << 20
"""Bytes of a body read at most; a POP answer is well under 4 KiB."""

IDLE_RECONNECT_S: Final = 2.0
"""Seconds idle after which the next request goes on a new connection.

Servers close idle keep-alive connections (5 s is common). A POST written
into a connection the server is closing at that moment fails in a way that
cannot be told from "dropped after processing" and would go to Review; a
fresh connection turns that race into a clean connect failure instead.
"""

NO_RETRIES: Final = Retry(
    total=0,
    connect=0,
    read=False,
    redirect=False,
    status=0,
    other=0,
    raise_on_status=False,
    respect_retry_after_header=False,
)
"""urllib3 retries nothing at all: every retry decision is retrypolicy's."""

_MASK: Final = "********"
_CHUNK: Final = 64 * 1024
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
_CHECK: Final = "Check before re-running."

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

_TRANSPORT_ERRORS: Final = (
    requests.RequestException,
    Urllib3Error,
    OSError,
    http.client.HTTPException,
)


class _Body(NamedTuple):
    """A response body as read: what arrived, what cut it short, and whether
    it went past READ_LIMIT."""

    content: bytes
    broken: BaseException | None = None
    cut: bool = False


class _Verdict(NamedTuple):
    """What an attempt came to, before the evidence and times are added."""

    kind: OutcomeKind
    reason: str
    detail: str
    stops_batch: bool = False
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class _Route:
    """Everything about one endpoint URL that does not change between requests."""

    url: str
    place: str  # host:port, for messages
    # Holds the Authorization header: never part of a repr.
    headers: CaseInsensitiveDict[str] = field(repr=False)
    adapter: BaseAdapter
    settings: Mapping[str, Any]  # verify, cert, proxies for adapter.send


class PopClient:
    """Sends requests to POP and classifies each answer; one per worker thread.

    Not thread-safe: it keeps one connection, for one request at a time.

    Args:
        endpoint: the API base, e.g. ``https://pay3.veritrans.co.jp/pop/v1``.
        key: the server key; only the Authorization header carries it.
        timeouts: connect and read timeouts, in seconds.
        adapter: a transport to mount instead of the default one (tests).
        clock: a monotonic clock, for elapsed times and idle connections.
        now: the wall clock, timezone-aware, for ``sent_at``.

    Raises:
        ConfigurationError: the endpoint is not an http(s) URL, carries a
            user name, password, query or fragment, or requests cannot use it.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        key: ServerKey,
        timeouts: Timeouts,
        adapter: BaseAdapter | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._secrets = _secret_forms(key)
        self._secret_bytes = tuple(secret.encode() for secret in self._secrets)
        self._endpoint = _checked_endpoint(endpoint, self._scrub)
        self._authorization = key.authorization()
        self._timeouts = timeouts
        self._timeout = (timeouts.connect, timeouts.read)
        self._clock = clock
        self._now = now or _utc_now
        self._last_done: float | None = None
        self._routes: dict[str, _Route] = {}

        # One connection: this client serves one thread with one request in
        # flight. A second would mean a response was not released.
        self._session = requests.Session()
        mounted = adapter or HTTPAdapter(
            pool_connections=1, pool_maxsize=1, max_retries=NO_RETRIES
        )
        self._session.mount("https://", mounted)
        self._session.mount("http://", mounted)

        # Prepare every endpoint now: a URL requests cannot use is a
        # configuration error, found before the first row is sent.
        for operation in OPERATIONS.values():
            try:
                self._route(operation)
            except (requests.RequestException, Urllib3Error, ValueError) as exc:
                text = self._scrub(str(exc))
                raise ConfigurationError(
                    f"the endpoint {self._scrub(endpoint)!r} cannot be used: {text}"
                ) from (exc if text == str(exc) else None)

    def __repr__(self) -> str:
        return f"PopClient(endpoint={self._endpoint!r})"

    def __enter__(self) -> PopClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()

    def send(
        self,
        operation: Operation,
        body: bytes,
        *,
        order_id: str,
        original_order_id: str | None = None,
    ) -> Outcome:
        """POST ``body`` to the operation's endpoint, exactly once, and classify.

        ``body`` is sent byte for byte as given (a retry passes the same
        bytes). ``order_id`` is the id sent; for reauthorize, an answer
        carrying ``original_order_id`` instead is accepted too.
        """
        route = self._routes.get(operation.endpoint) or self._route(operation)
        request = requests.PreparedRequest()
        request.method = "POST"
        request.url = route.url
        request.headers = route.headers.copy()
        request.headers["Content-Length"] = str(len(body))
        request.body = body
        if logger.isEnabledFor(logging.DEBUG):
            self._log_request(route, order_id, body)

        sent_at = self._now()
        start = self._clock()
        response, answer, failure = self._exchange(route, request, start)
        elapsed = max(0.0, self._clock() - start)
        received_at = sent_at + timedelta(seconds=elapsed)

        evidence: dict[str, Any] = {}
        if response is None or answer is None:
            verdict = self._failure(failure, operation, route)
        else:
            verdict, evidence = self._answer(
                operation, response, answer, order_id, original_order_id, received_at
            )

        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "answer order_id=%s kind=%s reason=%s http=%s ms=%d",
                order_id,
                verdict.kind,
                verdict.reason,
                evidence.get("http_status"),
                round(elapsed * 1000),
            )
        return Outcome(
            kind=verdict.kind,
            reason=verdict.reason,
            detail=verdict.detail,
            retry_after_s=verdict.retry_after_s,
            stops_batch=verdict.stops_batch,
            sent_at=sent_at,
            received_at=received_at,
            elapsed_ms=round(elapsed * 1000),
            **evidence,
        )

    def _exchange(
        self, route: _Route, request: requests.PreparedRequest, start: float
    ) -> tuple[requests.Response | None, _Body | None, BaseException | None]:
        """Send once and read the answer; what failed is returned, not raised."""
        if self._last_done is not None and start - self._last_done > IDLE_RECONNECT_S:
            route.adapter.close()

        response: requests.Response | None = None
        try:
            response = route.adapter.send(
                request, stream=True, timeout=self._timeout, **route.settings
            )
            return response, _read_body(response), None
        except _TRANSPORT_ERRORS as exc:
            return response, None, exc
        finally:
            if response is not None:
                response.close()
            self._last_done = self._clock()

    def _route(self, operation: Operation) -> _Route:
        """Prepare, once, what every request to this operation shares."""
        url = f"{self._endpoint.rstrip('/')}/{operation.endpoint}"
        parsed = parse_url(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)

        # Through requests once, so that headers are validated and the URL
        # normalised here and not on every request.
        template = requests.PreparedRequest()
        template.prepare(
            method="POST",
            url=url,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
                "Authorization": self._authorization,
            },
        )
        template.headers.pop("Content-Length", None)
        url = template.url or url

        # Proxies and CA bundles from the environment, as requests would
        # find them, looked up once per URL instead of once per request.
        found = self._session.merge_environment_settings(url, {}, None, None, None)
        route = _Route(
            url=url,
            place=f"{parsed.host}:{port}",
            headers=template.headers,
            adapter=self._session.get_adapter(url),
            settings={key: found[key] for key in ("verify", "cert", "proxies")},
        )
        self._routes[operation.endpoint] = route
        return route

    def _log_request(self, route: _Route, order_id: str, body: bytes) -> None:
        shown = {
            name: ("Basic " + _MASK if name.lower() == "authorization" else value)
            for name, value in route.headers.items()
        }
        logger.debug(
            "POST %s order_id=%s bytes=%d headers=%s body=%s",
            route.url,
            order_id,
            len(body),
            shown,
            self._scrub(body.decode("utf-8", "replace")),
        )

    def _failure(
        self, exc: BaseException | None, operation: Operation, route: _Route
    ) -> _Verdict:
        """The one place where transport errors become verdicts."""
        if exc is None:
            return _Verdict(
                OutcomeKind.UNKNOWN, "connection_dropped", "no answer object came back"
            )
        return _transport_verdict(
            exc,
            what=_WHAT.get(operation.name, "the request"),
            place=route.place,
            timeouts=self._timeouts,
            scrub=self._scrub,
        )

    def _answer(
        self,
        operation: Operation,
        response: requests.Response,
        answer: _Body,
        order_id: str,
        original_order_id: str | None,
        received_at: datetime,
    ) -> tuple[_Verdict, dict[str, Any]]:
        """Classify an HTTP answer, status rules first, and keep the evidence."""
        status = response.status_code
        headers = response.headers
        content_type = headers.get("Content-Type")
        content, broken, cut = answer
        if any(secret in content for secret in self._secret_bytes):
            content = self._scrub_bytes(content)
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
            verdict = _not_processed(status, after, header and self._scrub(header))
        elif status in (401, 403):
            verdict = _refused(status, pop)
        elif broken is not None:
            verdict = self._broken_body(
                status, headers, len(content), broken, operation
            )
        elif pop is None and status in _WRONG_ENDPOINT_STATUSES:
            url = self._scrub(response.url or "")
            verdict = _wrong_endpoint(status, content_type, content, url)
        elif pop is None:
            verdict = _Verdict(
                OutcomeKind.UNKNOWN,
                "not_pop_json",
                _not_pop_json_detail(status, content_type, content, cut),
            )
        else:
            verdict = _judge(operation, pop, status, order_id, original_order_id)

        return verdict, evidence

    def _broken_body(
        self,
        status: int,
        headers: Mapping[str, str],
        received: int,
        broken: BaseException,
        operation: Operation,
    ) -> _Verdict:
        """The headers came, then the body stalled or was cut short."""
        if isinstance(broken, (ReadTimeoutError, TimeoutError)):
            what = _WHAT.get(operation.name, "the request")
            return _Verdict(
                OutcomeKind.UNKNOWN,
                "read_timeout",
                f"HTTP {status} arrived, then nothing more within "
                f"{self._timeouts.read:g} s (read timeout); {what} may have been "
                f"made. {_CHECK}",
            )

        announced = headers.get("Content-Length", "")
        of = f" of {announced}" if announced.isdigit() else ""
        return _Verdict(
            OutcomeKind.UNKNOWN,
            "truncated_body",
            f"HTTP {status}, the response ended early ({received}{of} bytes "
            f"received); {_UNSURE}",
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

    def _scrub_bytes(self, data: bytes) -> bytes:
        for secret in self._secret_bytes:
            data = data.replace(secret, _MASK.encode())
        return data


# -- POP's answers ------------------------------------------------------------------


def _judge(
    operation: Operation,
    pop: Mapping[str, Any],
    status: int,
    order_id: str,
    original_order_id: str | None,
) -> _Verdict:
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
        return _Verdict(
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
        return _Verdict(
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


def _judge_failure(code: str, m_status: object, pop: Mapping[str, Any]) -> _Verdict:
    """Classify a POP answer with status failure that is not in doubt."""
    meaning = RESULT_CODES[code]
    if code in _STOPPING:
        # POP refused the request before doing anything with it, so it was
        # not processed: the row stays pending and the same command sends it
        # once the key or the mode is fixed.
        reason, detail = _STOPPING[code]
        return _Verdict(OutcomeKind.NOT_PROCESSED, reason, detail, stops_batch=True)

    # The API text: no m_status means the error came before the gateway.
    if m_status is None and code in _NOT_PROCESSED_CODES:
        return _Verdict(
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
        return _Verdict(
            OutcomeKind.FAILED,
            "declined",
            f"declined by the payment gateway{said} ({codes})",
        )
    if code.startswith("RC"):
        return _Verdict(
            OutcomeKind.FAILED,
            "invalid_request",
            f"POP refused the request: {code} {meaning}",
        )
    return _Verdict(
        OutcomeKind.FAILED, "pop_failure", f"POP answered {code} ({meaning})"
    )


def _not_processed(status: int, after: float | None, header: str | None) -> _Verdict:
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
    return _Verdict(
        OutcomeKind.NOT_PROCESSED,
        reason,
        f"HTTP {status}: {said}{when}; nothing was processed.",
        retry_after_s=after,
    )


def _refused(status: int, pop: Mapping[str, Any] | None) -> _Verdict:
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
    return _Verdict(OutcomeKind.NOT_PROCESSED, reason, detail, stops_batch=True)


def _wrong_endpoint(
    status: int, content_type: str | None, content: bytes, url: str
) -> _Verdict:
    """HTTP 404 or 405 with a body that is not POP JSON: the URL is not POP's.

    POP itself answers a wrong method with RC32 in POP JSON; a web server's
    own 404 or 405 page means the path is wrong. The row is unknown, as the
    retry table says of any answer that is not POP JSON, and the batch stops.
    """
    media_type = _media_type(content_type) or "no content type"
    shape = media_type if content else "empty body"
    return _Verdict(
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


def _unsure(reason: str, what: str) -> _Verdict:
    return _Verdict(OutcomeKind.UNKNOWN, reason, f"{what}; {_UNSURE}")


# -- bodies -----------------------------------------------------------------------


def _read_body(response: requests.Response) -> _Body:
    """Read the body, up to READ_LIMIT bytes, keeping what arrived on errors.

    Read in pieces rather than through requests, so that a body cut short
    still leaves what did arrive as evidence.
    """
    raw = response.raw
    if raw is None:
        return _Body(b"")
    if isinstance(raw, HTTPResponse):

        def read(amount: int) -> bytes:
            return raw.read1(amount, decode_content=True)

    else:
        read = raw.read

    pieces: list[bytes] = []
    size = 0
    try:
        while size <= READ_LIMIT:
            piece = read(_CHUNK)
            if not piece:
                return _Body(b"".join(pieces))
            pieces.append(piece)
            size += len(piece)
    except _TRANSPORT_ERRORS as exc:
        return _Body(b"".join(pieces), broken=exc)

    return _Body(b"".join(pieces)[:READ_LIMIT], cut=True)


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


# -- transport errors -----------------------------------------------------------------


def _transport_verdict(
    exc: BaseException,
    *,
    what: str,
    place: str,
    timeouts: Timeouts,
    scrub: Callable[[str], str],
) -> _Verdict:
    """Classify an exception raised while sending or reading.

    Not sent: the connection was never made (refused, DNS, connect timeout,
    proxy, TLS handshake) or the request could not be built. Anything else
    may have happened after the request left, so it is unknown.
    """
    inner = _underlying(exc)
    why = scrub(_why(inner))

    def not_sent(reason: str, text: str) -> _Verdict:
        return _Verdict(OutcomeKind.NOT_SENT, reason, f"{text}; nothing was sent.")

    def maybe_made(reason: str, text: str) -> _Verdict:
        return _Verdict(
            OutcomeKind.UNKNOWN, reason, f"{text}; {what} may have been made. {_CHECK}"
        )

    if isinstance(exc, requests.ReadTimeout) or isinstance(inner, ReadTimeoutError):
        return maybe_made(
            "read_timeout", f"no response within {timeouts.read:g} s (read timeout)"
        )
    # NewConnectionError is a subclass of ConnectTimeoutError: test it first.
    if isinstance(inner, NameResolutionError):
        return not_sent(
            "dns_failed",
            f"could not connect: the host name of {place} could not be resolved "
            f"({why})",
        )
    if isinstance(inner, NewConnectionError):
        return not_sent("connect_failed", f"could not connect to {place} ({why})")
    if isinstance(exc, requests.ConnectTimeout) or isinstance(
        inner, ConnectTimeoutError
    ):
        return not_sent(
            "connect_timeout",
            f"could not connect to {place} within {timeouts.connect:g} s "
            "(connect timeout)",
        )
    if isinstance(exc, requests.exceptions.ProxyError) or isinstance(
        inner, Urllib3ProxyError
    ):
        return not_sent("proxy_failed", f"could not connect through the proxy ({why})")
    if isinstance(exc, requests.exceptions.SSLError) or isinstance(
        inner, (Urllib3SSLError, ssl.SSLError)
    ):
        if _failed_in_handshake(inner):
            return not_sent(
                "tls_failed",
                f"could not connect to {place}: the TLS handshake failed ({why})",
            )
        return maybe_made(
            "connection_dropped", f"TLS error ({why}) after the request was sent"
        )
    if isinstance(
        exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader)
    ) or isinstance(inner, LocationValueError):
        return not_sent("cannot_send", f"the request could not be sent ({why})")

    # After sending: urllib3 wraps what http.client raised in a ProtocolError.
    wrapped = inner.args[1] if isinstance(inner, ProtocolError) else None
    cause = wrapped if isinstance(wrapped, BaseException) else inner
    if isinstance(cause, (http.client.RemoteDisconnected, BrokenPipeError)):
        return maybe_made(
            "connection_dropped", "connection closed after the request was sent"
        )
    if isinstance(cause, ConnectionResetError):
        return maybe_made(
            "connection_dropped", "connection reset after the request was sent"
        )
    if isinstance(cause, http.client.HTTPException):
        return maybe_made(
            "invalid_http_response",
            f"the answer was not valid HTTP ({scrub(_why(cause))})",
        )
    return maybe_made(
        "connection_dropped",
        f"the connection failed ({scrub(_why(cause))}) after the request was sent",
    )


def _underlying(exc: BaseException) -> BaseException:
    """The urllib3 error that requests wrapped, or ``exc`` itself."""
    inner = exc
    if isinstance(inner, requests.RequestException) and inner.args:
        first = inner.args[0]
        inner = first if isinstance(first, BaseException) else inner
    if isinstance(inner, MaxRetryError) and inner.reason is not None:
        inner = inner.reason
    return inner


def _why(exc: BaseException) -> str:
    """A short reason from the OS or the TLS library, e.g. 'connection refused'."""
    for err in _chain(exc):
        if isinstance(err, ssl.SSLError) and err.reason:
            return str(err.reason).lower().replace("_", " ")
        if isinstance(err, OSError) and err.strerror:
            return str(err.strerror)[:1].lower() + str(err.strerror)[1:]
    return (str(exc) or type(exc).__name__)[:200]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, through causes, contexts and wrapped errors."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 20:
        err = todo.pop(0)
        if id(err) in seen:
            continue
        seen.add(id(err))
        yield err
        linked = [err.__cause__, err.__context__, getattr(err, "reason", None)]
        linked += list(err.args)
        todo += [link for link in linked if isinstance(link, BaseException)]


def _failed_in_handshake(exc: BaseException) -> bool:
    """Whether a TLS error happened while setting up the connection.

    A certificate that fails verification, or any error raised inside the
    handshake (``do_handshake`` of Python's ssl module), means that no byte
    of the request was sent.
    """
    for err in _chain(exc):
        if isinstance(err, ssl.SSLCertVerificationError):
            return True
        tb = err.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "do_handshake":
                return True
            tb = tb.tb_next
    return False


# -- set-up helpers ---------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _secret_forms(key: ServerKey) -> tuple[str, ...]:
    """The key as it could appear in text: plain, base64 (with and without
    the colon of Basic authentication) and URL-encoded; longest first."""
    value = key.reveal()
    forms = {
        value,
        key.authorization().removeprefix("Basic "),
        base64.b64encode(value.encode()).decode("ascii"),
        quote(value, safe=""),
    }
    return tuple(sorted((form for form in forms if form), key=len, reverse=True))


def _checked_endpoint(endpoint: str, scrub: Callable[[str], str]) -> str:
    """Return the endpoint when it is a plain http(s) URL; raise otherwise."""
    shown = scrub(endpoint)
    try:
        url = parse_url(endpoint)
    except LocationParseError as exc:
        cause = exc if scrub(str(exc)) == str(exc) else None
        raise ConfigurationError(f"the endpoint {shown!r} is not a URL") from cause

    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"the endpoint {shown!r} is not an http:// or https:// URL",
            hint="Give the API base, e.g. https://pay3.veritrans.co.jp/pop/v1",
        )
    if url.auth:
        raise ConfigurationError(
            "the endpoint must not contain a user name or password",
            hint="The server key comes from POP_SERVER_KEY or --server-key-file.",
        )
    if url.query is not None or url.fragment is not None:
        raise ConfigurationError(
            f"the endpoint {shown!r} must not have a query or fragment"
        )
    return endpoint
