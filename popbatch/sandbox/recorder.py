"""What the sandbox received and applied, per order id and per endpoint.

Tests use it to prove that nothing was applied twice and to compare the
exact bytes popbatch sent. Headers are kept without ``Authorization``, so
the recorder never holds a server key. Raw requests are kept up to a limit
(counters keep counting past it), so a long benchmark cannot fill memory.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Counters of requests that carried no usable order id.
NO_ORDER_ID = ""


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as it arrived: exact body bytes, headers minus Authorization."""

    sequence: int
    endpoint: str
    method: str
    order_id: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes
    received_at: datetime

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any letter case), or None."""
        wanted = name.lower()
        return next(
            (value for key, value in self.headers if key.lower() == wanted), None
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form for the ``/_sandbox/requests`` endpoint."""
        return {
            "sequence": self.sequence,
            "endpoint": self.endpoint,
            "method": self.method,
            "order_id": self.order_id,
            "headers": [list(pair) for pair in self.headers],
            "body": self.body.decode("utf-8", errors="backslashreplace"),
            "received_at": self.received_at.isoformat(),
        }


class Recorder:
    """Counts and keeps received requests; every method is thread-safe."""

    def __init__(self, *, keep: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self.clear()

    def clear(self) -> None:
        """Forget every count and request."""
        with self._lock:
            self._received: dict[str, dict[str, int]] = defaultdict(
                lambda: defaultdict(int)
            )
            self._applied: dict[str, dict[str, int]] = defaultdict(
                lambda: defaultdict(int)
            )
            self._requests: list[ReceivedRequest] = []
            self._sequence = 0

    def receive(
        self,
        *,
        endpoint: str,
        method: str,
        order_id: str | None,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        received_at: datetime,
    ) -> int:
        """Count one request and keep it; returns how many came before it for
        the same order id (all endpoints), which makes fault draws repeatable."""
        kept = tuple(pair for pair in headers if pair[0].lower() != "authorization")
        key = NO_ORDER_ID if order_id is None else order_id
        with self._lock:
            self._sequence += 1
            per_endpoint = self._received[key]
            before = sum(per_endpoint.values())
            per_endpoint[endpoint] += 1
            if len(self._requests) < self._keep:
                self._requests.append(
                    ReceivedRequest(
                        self._sequence,
                        endpoint,
                        method,
                        order_id,
                        kept,
                        body,
                        received_at,
                    )
                )
        return before

    def mark_applied(self, *, endpoint: str, order_id: str | None) -> None:
        """Count one request whose effect reached the ledger (or a scripted success)."""
        key = NO_ORDER_ID if order_id is None else order_id
        with self._lock:
            self._applied[key][endpoint] += 1

    def received(self, order_id: str | None = None, endpoint: str | None = None) -> int:
        """Requests received, for one order id and/or endpoint, or in all."""
        with self._lock:
            return _total(self._received, order_id, endpoint)

    def applied(self, order_id: str | None = None, endpoint: str | None = None) -> int:
        """Requests applied, for one order id and/or endpoint, or in all."""
        with self._lock:
            return _total(self._applied, order_id, endpoint)

    def requests(
        self, order_id: str | None = None, endpoint: str | None = None
    ) -> list[ReceivedRequest]:
        """Kept requests in arrival order, for one order id and/or endpoint."""
        with self._lock:
            kept = list(self._requests)
        return [
            item
            for item in kept
            if (order_id is None or item.order_id == order_id)
            and (endpoint is None or item.endpoint == endpoint)
        ]

    def snapshot(self) -> dict[str, Any]:
        """Every counter as JSON-friendly data (the ``/_sandbox/counters`` body)."""
        with self._lock:
            orders = sorted(set(self._received) | set(self._applied))
            endpoints: dict[str, dict[str, int]] = defaultdict(
                lambda: {"received": 0, "applied": 0}
            )
            by_order: dict[str, Any] = {}
            for key in orders:
                received = self._received.get(key, {})
                applied = self._applied.get(key, {})
                per_endpoint = {
                    name: {
                        "received": received.get(name, 0),
                        "applied": applied.get(name, 0),
                    }
                    for name in sorted(set(received) | set(applied))
                }
                for name, counts in per_endpoint.items():
                    endpoints[name]["received"] += counts["received"]
                    endpoints[name]["applied"] += counts["applied"]
                if key != NO_ORDER_ID:
                    by_order[key] = {
                        "received": sum(received.values()),
                        "applied": sum(applied.values()),
                        "endpoints": per_endpoint,
                    }
            unidentified = sum(self._received.get(NO_ORDER_ID, {}).values())
            kept = len(self._requests)

        return {
            "received": sum(counts["received"] for counts in endpoints.values()),
            "applied": sum(counts["applied"] for counts in endpoints.values()),
            "endpoints": dict(sorted(endpoints.items())),
            "orders": by_order,
            "without_order_id": {"received": unidentified},
            "requests_kept": kept,
        }


def _total(
    table: dict[str, dict[str, int]], order_id: str | None, endpoint: str | None
) -> int:
    rows = [table[order_id]] if order_id is not None and order_id in table else []
    if order_id is None:
        rows = list(table.values())
    return sum(
        count
        for row in rows
        for name, count in row.items()
        if endpoint is None or name == endpoint
    )
