"""PopClient: one POST to POP, sent exactly once, and its answer read.

Each worker thread owns one :class:`PopClient`, which owns one
``requests.Session``. ``send`` never raises for a transport or server
problem: every case of DESIGN.md's "When to retry" table becomes an
outcome, and what to do next is for ``retrypolicy`` to say.

Two rules shape this module, because POP has no idempotency key:

- Nothing is ever re-sent here. The session's adapter has a urllib3
  ``Retry`` that allows no retry at all (``total=0``, ``read=False``), so a
  POST dropped after it left is reported, not replayed.
- Transport errors are translated in one place, ``failures.transport_verdict``.
  requests raises the same ``ConnectionError`` for "nothing was sent" and
  "dropped after sending"; the urllib3 error underneath tells them apart.

What an answer means is for ``answers`` to say; this module owns the
session, the connection, the bytes on the wire and the server key.

The server key never leaves this module except in the Authorization
header: texts taken from the network or from exceptions are scrubbed of
it, in every spelling ``keyforms`` knows (plain, hex or base64, also
inside a longer base64 text, each character perhaps URL-, JSON- or
HTML-escaped), before they reach an outcome or a
log. A body is scrubbed twice: as bytes, and once more after decoding,
since a JSON ``\\u`` escape or a charset can spell the key in other bytes.
"""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import LocationParseError
from urllib3.response import HTTPResponse
from urllib3.util import Retry, parse_url

from popbatch import __version__
from popbatch.client.answers import Verdict, action_of, judge_answer
from popbatch.client.bodies import READ_LIMIT, Body
from popbatch.client.failures import transport_verdict
from popbatch.client.keyforms import MASK, KeyScrubber
from popbatch.config import ServerKey, Timeouts
from popbatch.errors import ConfigurationError
from popbatch.operations import OPERATIONS, Operation
from popbatch.rows import Outcome, OutcomeKind

logger = logging.getLogger(__name__)

USER_AGENT: Final = f"popbatch/{__version__}"

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

_CHUNK: Final = 64 * 1024
_TRANSPORT_ERRORS: Final = (
    requests.RequestException,
    Urllib3Error,
    OSError,
    http.client.HTTPException,
)


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
        self._scrubber = KeyScrubber(key.reveal())
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
    ) -> tuple[requests.Response | None, Body | None, BaseException | None]:
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
            name: ("Basic " + MASK if name.lower() == "authorization" else value)
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
    ) -> Verdict:
        """What an exchange that raised ``exc`` came to (see ``failures``)."""
        if exc is None:
            return Verdict(
                OutcomeKind.UNKNOWN, "connection_dropped", "no answer object came back"
            )
        return transport_verdict(
            exc,
            what=action_of(operation),
            place=route.place,
            timeouts=self._timeouts,
            scrub=self._scrub,
        )

    def _answer(
        self,
        operation: Operation,
        response: requests.Response,
        answer: Body,
        order_id: str,
        original_order_id: str | None,
        received_at: datetime,
    ) -> tuple[Verdict, dict[str, Any]]:
        """Classify an HTTP answer, the server key masked in what it echoed."""
        if self._scrubber.found_in(answer.content):
            answer = answer._replace(content=self._scrubber.data(answer.content))
        return judge_answer(
            operation,
            response.status_code,
            response.headers,
            response.url or "",
            answer,
            order_id=order_id,
            original_order_id=original_order_id,
            received_at=received_at,
            read_timeout=self._timeouts.read,
            scrub=self._scrub,
        )

    def _scrub(self, text: str) -> str:
        return self._scrubber.text(text)


# -- the body ------------------------------------------------------------------------


def _read_body(response: requests.Response) -> Body:
    """Read the body, up to READ_LIMIT bytes, keeping what arrived on errors.

    Read in pieces rather than through requests, so that a body cut short
    still leaves what did arrive as evidence.
    """
    raw = response.raw
    if raw is None:
        return Body(b"")
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
                return Body(b"".join(pieces))
            pieces.append(piece)
            size += len(piece)
    except _TRANSPORT_ERRORS as exc:
        return Body(b"".join(pieces), broken=exc)

    return Body(b"".join(pieces)[:READ_LIMIT], cut=True)


# -- set-up helpers ---------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
