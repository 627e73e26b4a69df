"""Scripted answers per order id, in the format of the field cases' stub.json.

A script is JSON::

    {"default": ANSWER,
     "orders": {"HE-002": [ANSWER, ANSWER, ...], ...}}

Each order's answers are used one per request, in order, whatever the
endpoint; once they are used up, the order gets ``default``, and without a
default it gets the sandbox's real behaviour (validation already happened:
a scripted answer only replaces the gateway and ledger step). An ANSWER is
an object with these keys, all optional:

- ``status`` (HTTP status, default 200), ``headers`` (object of strings);
- ``json`` (any JSON, sent as application/json) or ``body`` (text);
- ``delay_s``: wait this long before answering;
- ``action``: ``close_after_read`` (close the connection without an
  answer), ``hang`` (never answer), ``pass`` (answer as if unscripted).

Placeholders ``{order_id}``, ``{original_order_id}`` and ``{success_code}``
are replaced in every string of ``json``, ``body`` and header values. A
scripted answer never changes the ledger; the counters count it as applied
when its JSON is an object with ``"status": "success"``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from popbatch.sandbox.errors import SandboxError
from popbatch.sandbox.seed import read_json_file

ACTIONS = ("close_after_read", "hang", "pass")
_ANSWER_KEYS = {"status", "headers", "json", "body", "delay_s", "action"}


@dataclass(frozen=True, slots=True)
class ScriptedAnswer:
    """One scripted answer; ``has_json`` tells ``json: null`` from no json."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    json: Any = None
    has_json: bool = False
    body: str | None = None
    delay_s: float = 0.0
    action: str | None = None

    @classmethod
    def from_mapping(cls, data: object, *, where: str) -> ScriptedAnswer:
        """Check one answer object, naming ``where`` in errors."""
        if not isinstance(data, dict):
            raise SandboxError(f"{where} must be a JSON object")
        unknown = sorted(set(data) - _ANSWER_KEYS)
        if unknown:
            raise SandboxError(
                f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_ANSWER_KEYS))})"
            )

        status = data.get("status", 200)
        if type(status) is not int or not 200 <= status <= 599 or status in (204, 304):
            raise SandboxError(
                f"{where}: status must be an HTTP status from 200 to 599 (not 204 or 304)"
            )
        headers = _headers(data.get("headers", {}), where)
        if "json" in data and "body" in data:
            raise SandboxError(f"{where}: give json or body, not both")
        body = data.get("body")
        if body is not None and not isinstance(body, str):
            raise SandboxError(f"{where}: body must be a string")
        delay = data.get("delay_s", 0)
        if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
            raise SandboxError(
                f"{where}: delay_s must be a number of seconds, 0 or more"
            )
        action = data.get("action")
        if action is not None and action not in ACTIONS:
            raise SandboxError(f"{where}: action must be one of {', '.join(ACTIONS)}")

        return cls(
            status=status,
            headers=tuple(headers.items()),
            json=data.get("json"),
            has_json="json" in data,
            body=body,
            delay_s=float(delay),
            action=action,
        )

    def render(
        self, *, order_id: str, original_order_id: str, success_code: str
    ) -> RenderedAnswer:
        """The answer with its placeholders filled in, ready to send."""
        values = {
            "{order_id}": order_id,
            "{original_order_id}": original_order_id,
            "{success_code}": success_code,
        }
        headers = [(name, _fill(value, values)) for name, value in self.headers]
        document = _fill_json(self.json, values) if self.has_json else None
        if self.has_json:
            payload = json.dumps(document, ensure_ascii=False).encode("utf-8")
            default_type = "application/json; charset=utf-8"
        else:
            payload = _fill(self.body or "", values).encode("utf-8")
            default_type = "text/plain; charset=utf-8"
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", default_type))

        succeeded = isinstance(document, dict) and document.get("status") == "success"
        return RenderedAnswer(
            status=self.status,
            headers=tuple(headers),
            body=payload,
            succeeded=succeeded and self.action is None,
        )


@dataclass(frozen=True, slots=True)
class RenderedAnswer:
    """A scripted answer with its bytes; ``succeeded`` counts it as applied."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    succeeded: bool


@dataclass(frozen=True, slots=True)
class Script:
    """A default answer and per-order answer lists."""

    default: ScriptedAnswer | None = None
    orders: Mapping[str, tuple[ScriptedAnswer, ...]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: object, *, source: str = "script") -> Script:
        """Check and convert stub.json-shaped data.

        Raises:
            SandboxError: the data does not follow the format.
        """
        if not isinstance(data, dict):
            raise SandboxError(f"{source} must be a JSON object")
        unknown = sorted(set(data) - {"default", "orders", "comment"})
        if unknown:
            raise SandboxError(
                f"{source}: unknown key {unknown[0]!r} (allowed: default, orders)"
            )

        default = data.get("default")
        orders = data.get("orders", {})
        if not isinstance(orders, dict):
            raise SandboxError(
                f"{source}: orders must be an object of order id to answers"
            )
        return cls(
            default=None
            if default is None
            else ScriptedAnswer.from_mapping(default, where=f"{source}: default"),
            orders={
                order_id: _answers(answers, f"{source}: orders[{order_id!r}]")
                for order_id, answers in orders.items()
            },
        )


def load_script_file(path: Path) -> Script:
    """Read a script file (stub.json format).

    Raises:
        SandboxError: the file is missing, unreadable, not JSON, or not a script.
    """
    return Script.from_mapping(read_json_file(path, "script"), source=path.name)


def _answers(data: object, where: str) -> tuple[ScriptedAnswer, ...]:
    items = data if isinstance(data, list) else [data]
    return tuple(
        ScriptedAnswer.from_mapping(item, where=f"{where}[{index}]")
        for index, item in enumerate(items)
    )


class ScriptBook:
    """The script in use and how far each order has got through it; thread-safe."""

    def __init__(self, script: Script | None = None) -> None:
        self._lock = threading.Lock()
        self._default: ScriptedAnswer | None = None
        self._queues: dict[str, list[ScriptedAnswer]] = {}
        self.replace(script)

    def replace(self, script: Script | None) -> None:
        """Use ``script`` from now on, from the first answer of every order."""
        with self._lock:
            self._default = None if script is None else script.default
            orders = {} if script is None else script.orders
            self._queues = {
                order_id: list(answers) for order_id, answers in orders.items()
            }

    def add(self, order_id: str, answers: tuple[ScriptedAnswer, ...]) -> None:
        """Queue more answers for one order, after those it still has."""
        with self._lock:
            self._queues.setdefault(order_id, []).extend(answers)

    def next_answer(self, order_id: str) -> ScriptedAnswer | None:
        """Take the order's next answer: its own, then the default, else None."""
        with self._lock:
            queue = self._queues.get(order_id)
            if queue:
                return queue.pop(0)
            return self._default


# The server frames every answer itself; a script may not contradict it.
_FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection"}


def _headers(data: object, where: str) -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise SandboxError(f"{where}: headers must be an object of strings")
    for name, value in data.items():
        if name.lower() in _FRAMING_HEADERS:
            raise SandboxError(f"{where}: header {name!r} is set by the sandbox itself")
        if not _is_header_text(name) or not name or ":" in name or " " in name:
            raise SandboxError(f"{where}: {name!r} is not a header name")
        if not _is_header_text(value):
            raise SandboxError(
                f"{where}: header {name!r} must be Latin-1 text on one line"
            )
    return data


def _is_header_text(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return "\r" not in text and "\n" not in text


def _fill(text: str, values: Mapping[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def _fill_json(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _fill(value, values)
    if isinstance(value, list):
        return [_fill_json(item, values) for item in value]
    if isinstance(value, dict):
        return {key: _fill_json(item, values) for key, item in value.items()}
    return value
