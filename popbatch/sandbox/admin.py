"""The admin endpoints under ``/_sandbox``: counters, requests, ledger, settings.

They sit outside the POP base path and need no key (the sandbox listens on
loopback, and they hold no secret: requests are kept without their
Authorization header). Every answer is JSON::

    GET  /_sandbox/counters              received and applied, per order and endpoint
    GET  /_sandbox/requests              kept requests (?order_id=...&endpoint=...)
    GET  /_sandbox/orders/ORDER_ID       one order of the ledger, with its history
    POST /_sandbox/reset                 back to the start: ledger, counters, faults, script
    POST /_sandbox/faults                replace the fault settings (Faults field names)
    POST /_sandbox/script                replace the script (stub.json format)
    POST /_sandbox/seed                  add orders and accounts (seed format)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from popbatch.sandbox.config import ADMIN_PREFIX
from popbatch.sandbox.errors import SandboxError
from popbatch.sandbox.faults import Faults
from popbatch.sandbox.pop import JSON_TYPE, Reply
from popbatch.sandbox.script import Script
from popbatch.sandbox.seed import Seed

if TYPE_CHECKING:
    from popbatch.sandbox.server import SandboxServer


def answer_admin(
    sandbox: SandboxServer,
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
) -> Reply:
    """Answer one admin request; bad input gets 400 with an ``error`` line."""
    name = path[len(ADMIN_PREFIX) + 1 :]
    try:
        if method in ("GET", "HEAD"):
            return _get(sandbox, name, query)
        if method == "POST":
            return _post(sandbox, name, body)
    except SandboxError as error:
        return _json(400, {"error": str(error)})
    return _json(405, {"error": f"{method} is not supported on {path}"})


def _get(sandbox: SandboxServer, name: str, query: Mapping[str, str]) -> Reply:
    if name == "counters":
        return _json(200, sandbox.counters())
    if name == "requests":
        kept = sandbox.requests(query.get("order_id"), query.get("endpoint"))
        return _json(200, {"requests": [item.to_json() for item in kept]})
    if name.startswith("orders/"):
        order_id = name[len("orders/") :]
        view = sandbox.order(order_id)
        if view is None:
            return _json(404, {"error": f"no order {order_id!r} in the ledger"})
        return _json(200, dataclasses.asdict(view))
    return _json(404, {"error": f"no admin endpoint {name!r}"})


def _post(sandbox: SandboxServer, name: str, body: bytes) -> Reply:
    data = _parse(body)
    if name == "reset":
        sandbox.reset()
    elif name == "faults":
        if not isinstance(data, dict):
            raise SandboxError("fault settings must be a JSON object")
        sandbox.set_faults(Faults.from_mapping(data))
    elif name == "script":
        sandbox.set_script(Script.from_mapping(data, source="script"))
    elif name == "seed":
        sandbox.load_seed(Seed.from_mapping(data, source="seed"))
    else:
        return _json(404, {"error": f"no admin endpoint {name!r}"})
    return _json(200, {"ok": True})


def _parse(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError as error:
        raise SandboxError(f"the body is not JSON: {error}") from None


def _json(status: int, data: Mapping[str, Any]) -> Reply:
    payload = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
    return Reply(status, (("Content-Type", JSON_TYPE),), payload)
