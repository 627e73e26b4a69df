"""Helpers for the sandbox's own tests: a plain requests client, no popbatch code.

The sandbox is the referee, so its tests talk to it with plain requests and
raw sockets only; popbatch's client gets its contract tests elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from popbatch.sandbox import SandboxServer

JSON_TYPE = "application/json; charset=utf-8"
_DEFAULT = object()


@dataclass
class Pop:
    """Posts to one sandbox the way a careful client would, or not, on request."""

    server: SandboxServer
    session: requests.Session

    def post(
        self,
        endpoint: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        key: Any = _DEFAULT,
        content_type: str | None = JSON_TYPE,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST ``body`` as JSON (or ``raw`` bytes) with the test key by default."""
        sent = dict(headers or {})
        if key is not None:
            chosen = self.server.test_key if key is _DEFAULT else key
            sent["Authorization"] = self.server.authorization(chosen)
        if content_type is not None:
            sent["Content-Type"] = content_type
        data = raw if raw is not None else json.dumps(body).encode()
        return self.session.post(
            self.server.url(endpoint), data=data, headers=sent, timeout=timeout
        )

    def result(self, endpoint: str, body: Any, **options: Any) -> dict[str, Any]:
        """POST and return the answer's JSON (which must be JSON)."""
        answer = self.post(endpoint, body, **options)
        data: dict[str, Any] = answer.json()
        return data


@pytest.fixture
def pop(sandbox: SandboxServer) -> Iterator[Pop]:
    """A client of the session sandbox, with its own Session."""
    with requests.Session() as session:
        yield Pop(sandbox, session)
