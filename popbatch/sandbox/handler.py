"""HTTP handling for the sandbox: a threaded stdlib server on loopback.

``http.server.ThreadingHTTPServer`` does the HTTP/1.1 work (keep-alive, one
daemon thread per connection). This module reads each request, records it,
draws a fault, asks the POP application for the answer and sends it; raw
socket work happens only for faults that need it (closing without an
answer, a body cut short, a connection held open). The public face is
``SandboxServer`` in ``popbatch.sandbox.server``.
"""

from __future__ import annotations

import logging
import select
import socket
import socketserver
import sys
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Event
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from popbatch.sandbox.admin import answer_admin
from popbatch.sandbox.config import ADMIN_PREFIX
from popbatch.sandbox.faults import (
    BAD_GATEWAY_PAGE,
    MAINTENANCE_PAGE,
    OVERLOADED_PAGE,
    FaultKind,
    Faults,
    Stage,
    retry_after_value,
)
from popbatch.sandbox.pop import Call, Reply

if TYPE_CHECKING:
    from popbatch.sandbox.server import SandboxServer

logger = logging.getLogger(__name__)

HTML_TYPE = "text/html; charset=utf-8"
NOT_FOUND_PAGE = "<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n"


class HTTPServer(ThreadingHTTPServer):
    """The listening socket and its threads, tied to one SandboxServer."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], sandbox: SandboxServer, family: int
    ) -> None:
        self.address_family = family
        self.sandbox = sandbox
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's FQDN lookup, which can stall on DNS."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log instead of printing a traceback; a dropped client is routine."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logger.debug("connection from %s ended: %s", client_address, error)
        else:
            logger.error(
                "sandbox error while serving %s", client_address, exc_info=error
            )


class Handler(BaseHTTPRequestHandler):
    """One connection: reads requests and answers them until it closes."""

    protocol_version = "HTTP/1.1"
    server_version = "popbatch-sandbox"
    sys_version = ""
    disable_nagle_algorithm = True
    # Idle keep-alive connections and stalled uploads end after this.
    timeout = 300
    server: HTTPServer

    def setup(self) -> None:
        """Start tracking the connection, so that stop() can close it."""
        super().setup()
        self.server.sandbox.track(self.connection)

    def finish(self) -> None:
        """Stop tracking the connection."""
        try:
            super().finish()
        finally:
            self.server.sandbox.untrack(self.connection)

    def do_POST(self) -> None:
        """Every method goes the same way; POP answers RC32 to all but POST."""
        self._dispatch()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def do_HEAD(self) -> None:
        """Like GET, without the body."""
        self._dispatch(head=True)

    def log_message(self, format: str, *args: Any) -> None:
        """The access log: off unless asked for, and then through logging."""
        if self.server.sandbox.config.access_log:
            logger.info("%s %s", self.address_string(), format % args)

    def _dispatch(self, *, head: bool = False) -> None:
        body = self._read_body()
        if body is None:
            return
        try:
            self._route(body, head=head)
        except OSError:
            raise
        except Exception:
            # A sandbox bug must show as one, never as a plausible POP answer.
            logger.exception("sandbox bug while answering %s", self.path)
            self.close_connection = True
            error = b"sandbox internal error\n"
            self._send(Reply(500, (("Content-Type", "text/plain"),), error))

    def _route(self, body: bytes, *, head: bool) -> None:
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        if parts.path.startswith(ADMIN_PREFIX + "/"):
            query = {name: values[0] for name, values in parse_qs(parts.query).items()}
            reply = answer_admin(sandbox, self.command, parts.path, query, body)
            self._send(reply, head=head)
            return

        endpoint = sandbox.endpoint_for(parts.path)
        if endpoint is None:
            page = NOT_FOUND_PAGE.encode()
            self._send(Reply(404, (("Content-Type", HTML_TYPE),), page), head=head)
            return
        self._serve_pop(endpoint, body, head=head)

    def _serve_pop(self, endpoint: str, body: bytes, *, head: bool) -> None:
        """Record, draw a fault, answer (or misbehave) for one POP request."""
        sandbox = self.server.sandbox
        call = Call.build(
            method=self.command,
            endpoint=endpoint,
            content_type=self.headers.get("Content-Type"),
            authorization=self.headers.get("Authorization"),
            body=body,
        )
        ordinal = self._record(call)
        faults = sandbox.faults
        release = sandbox.release_event
        draw = sandbox.draw_fault(faults, key=f"{endpoint}|{call.order_id}|{ordinal}")
        if draw.delay_s and release.wait(draw.delay_s):
            self.close_connection = True
            return

        kind = draw.kind
        if kind is not None and kind.stage is Stage.FRONT:
            self._front_fault(kind, faults)
            return
        instead = kind is not None and kind.stage is Stage.INSTEAD
        reply = sandbox.application.handle(
            call,
            not_processed=kind.value.upper() if kind is not None and instead else None,
            not_processed_status=faults.not_processed_status,
        )
        if reply.applied:
            sandbox.recorder.mark_applied(endpoint=endpoint, order_id=call.order_id)

        if kind is not None and kind.stage is Stage.BACK:
            self._back_fault(kind, reply, faults, release)
        else:
            self._deliver(reply, faults, release, head=head)

    def _record(self, call: Call) -> int:
        """Count and keep the request; the ordinal of its order id."""
        return self.server.sandbox.recorder.receive(
            endpoint=call.endpoint,
            method=call.method,
            order_id=call.order_id,
            headers=tuple(self.headers.items()),
            body=call.body,
            received_at=datetime.now(UTC),
        )

    def _deliver(
        self, reply: Reply, faults: Faults, release: Event, *, head: bool
    ) -> None:
        """Send the reply, or carry out its scripted action or delay."""
        if reply.action == "close_after_read" or (
            reply.delay_s and release.wait(reply.delay_s)
        ):
            # Closed without an answer: scripted, or let go by a reset or stop.
            self.close_connection = True
        elif reply.action == "hang":
            self._hold(release, faults.hang_limit_s)
        else:
            self._send(reply, head=head)

    def _front_fault(self, kind: FaultKind, faults: Faults) -> None:
        if kind is FaultKind.CLOSE_BEFORE_APPLY:
            self.close_connection = True
            return
        if kind is FaultKind.MAINTENANCE_HTML:
            self._send(_html(200, MAINTENANCE_PAGE))
            return

        status = 429 if kind is FaultKind.TOO_MANY_REQUESTS else 503
        page = OVERLOADED_PAGE.format(status=f"{status} {HTTPStatus(status).phrase}")
        retry_after = retry_after_value(faults, now=time.time())
        extra = () if retry_after is None else (("Retry-After", retry_after),)
        self._send(_html(status, page, extra))

    def _back_fault(
        self, kind: FaultKind, reply: Reply, faults: Faults, release: Event
    ) -> None:
        if kind is FaultKind.BAD_GATEWAY_HTML:
            self._send(_html(502, BAD_GATEWAY_PAGE))
        elif kind is FaultKind.TRUNCATED_BODY:
            self.close_connection = True
            self._send(reply, truncate=True)
        elif kind is FaultKind.CLOSE_AFTER_APPLY:
            self.close_connection = True
        else:
            self._hold(release, faults.hang_limit_s)

    def _hold(self, release: Event, limit_s: float) -> None:
        """Never answer: wait until the client gives up, a reset, or the limit."""
        self.close_connection = True
        deadline = time.monotonic() + limit_s
        connection = self.connection
        while not release.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable, _, _ = select.select([connection], [], [], min(0.2, remaining))
            if readable:
                try:
                    if not connection.recv(65536):
                        return
                except OSError:
                    return

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a framing error."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        lengths = set(self.headers.get_all("Content-Length") or [])
        if not lengths:
            return b""
        text = lengths.pop() if len(lengths) == 1 else ""
        if not text.strip().isdigit():
            self._framing_error(400, "Content-Length is not one whole number")
            return None
        length = int(text)
        if length > self.server.sandbox.config.max_body_bytes:
            self._framing_error(413, "request body too large for the sandbox")
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        limit = self.server.sandbox.config.max_body_bytes
        parts: list[bytes] = []
        size_total = 0
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                self._framing_error(400, "bad chunk size")
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return b"".join(parts)
            size_total += size
            if size_total > limit:
                self._framing_error(413, "request body too large for the sandbox")
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _framing_error(self, status: int, message: str) -> None:
        self.close_connection = True
        self._send(
            Reply(
                status,
                (("Content-Type", "text/plain; charset=utf-8"),),
                f"{message}\n".encode(),
            )
        )

    def _send(
        self, reply: Reply, *, head: bool = False, truncate: bool = False
    ) -> None:
        """Write status line, headers and body in one write (no Nagle stalls)."""
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = ""
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            *(f"{name}: {value}" for name, value in reply.headers),
            f"Content-Length: {len(reply.body)}",
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = (
            b""
            if head
            else reply.body[: len(reply.body) // 2]
            if truncate
            else reply.body
        )
        self.wfile.write(head_bytes + body)
        self.log_request(reply.status, len(reply.body))


def _html(status: int, page: str, extra: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, (("Content-Type", HTML_TYPE), *extra), page.encode("utf-8"))


def new_socket_family(host: str) -> int:
    """IPv6 for a host written with colons, IPv4 otherwise."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET
