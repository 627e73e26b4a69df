"""What a failed exchange means: the one place where transport errors become verdicts.

requests raises the same ``ConnectionError`` for "nothing was sent" and
"dropped after sending"; the urllib3 error underneath tells them apart.
Nothing was sent when the connection was never made (refused, DNS, connect
timeout, proxy, TLS handshake) or the request could not be built; anything
else may have happened after the request left, so its outcome is unknown.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Iterator

import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationValueError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import ProxyError as Urllib3ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError

from popbatch.client.answers import CHECK, Verdict
from popbatch.config import Timeouts
from popbatch.rows import OutcomeKind


def transport_verdict(
    exc: BaseException,
    *,
    what: str,
    place: str,
    timeouts: Timeouts,
    scrub: Callable[[str], str],
) -> Verdict:
    """Classify an exception raised while sending or reading.

    Not sent: the connection was never made (refused, DNS, connect timeout,
    proxy, TLS handshake) or the request could not be built. Anything else
    may have happened after the request left, so it is unknown.
    """
    inner = _underlying(exc)
    why = _why(inner, scrub)

    def not_sent(reason: str, text: str) -> Verdict:
        return Verdict(OutcomeKind.NOT_SENT, reason, f"{text}; nothing was sent.")

    def maybe_made(reason: str, text: str) -> Verdict:
        return Verdict(
            OutcomeKind.UNKNOWN, reason, f"{text}; {what} may have been made. {CHECK}"
        )

    if isinstance(exc, requests.ReadTimeout) or isinstance(inner, ReadTimeoutError):
        return maybe_made(
            "read_timeout", f"no response within {timeouts.read:g} s (read timeout)"
        )
    # NewConnectionError is a subclass of ConnectTimeoutError: test it first.
    if isinstance(inner, NameResolutionError):
        if _no_such_host(inner):
            # Not a passing failure: the name does not exist, so every row
            # would go the same way (a typo in --endpoint, most often).
            return Verdict(
                OutcomeKind.NOT_SENT,
                "host_not_found",
                f"could not connect: the host name of {place} does not exist in "
                f"DNS ({why}); nothing was sent.",
                stops_batch=True,
            )
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
            f"the answer was not valid HTTP ({_why(cause, scrub)})",
        )
    return maybe_made(
        "connection_dropped",
        f"the connection failed ({_why(cause, scrub)}) after the request was sent",
    )


# getaddrinfo's answers that a name does not exist (EAI_AGAIN, a resolver
# that could not be reached, is a passing failure and stays dns_failed).
_NO_SUCH_HOST = frozenset(
    code
    for code in (
        getattr(socket, "EAI_NONAME", None),
        getattr(socket, "EAI_NODATA", None),
    )
    if code is not None
)


def _no_such_host(error: NameResolutionError) -> bool:
    """Whether DNS said that the host name does not exist."""
    cause = error.__cause__ or error.__context__
    for candidate in (cause, *error.args):
        if isinstance(candidate, socket.gaierror):
            return candidate.errno in _NO_SUCH_HOST
    return False


def _underlying(exc: BaseException) -> BaseException:
    """The urllib3 error that requests wrapped, or ``exc`` itself."""
    inner = exc
    if isinstance(inner, requests.RequestException) and inner.args:
        first = inner.args[0]
        inner = first if isinstance(first, BaseException) else inner
    if isinstance(inner, MaxRetryError) and inner.reason is not None:
        inner = inner.reason
    return inner


def _why(exc: BaseException, scrub: Callable[[str], str]) -> str:
    """A short reason from the OS or the TLS library, e.g. 'connection refused'.

    Scrubbed before it is cut short, so that no part of the key is shown.
    """
    for err in _chain(exc):
        if isinstance(err, ssl.SSLError) and err.reason:
            return scrub(str(err.reason).lower().replace("_", " "))[:200]
        if isinstance(err, OSError) and err.strerror:
            text = scrub(str(err.strerror))
            return (text[:1].lower() + text[1:])[:200]
    return scrub(str(exc) or type(exc).__name__)[:200]


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
