"""The POP client: one request in, one classified :class:`~popbatch.rows.Outcome` out.

``PopClient`` (``transport``) sends one POST to POP, exactly once, on the
connection of its worker thread, and never raises for a transport or server
problem: every case of DESIGN.md's "When to retry" table becomes an
outcome, and what to do next is for ``retrypolicy`` to say. What an
answer means is read in ``answers`` (pure: status, headers and body in, a
verdict out), and what a transport error means in ``failures``;
``bodies`` reads a body strictly as POP JSON for the verdict, and as text
for the evidence.
"""

from __future__ import annotations

from popbatch.client.bodies import BODY_TEXT_LIMIT, READ_LIMIT
from popbatch.client.transport import (
    IDLE_RECONNECT_S,
    NO_RETRIES,
    USER_AGENT,
    PopClient,
)

__all__ = [
    "BODY_TEXT_LIMIT",
    "IDLE_RECONNECT_S",
    "NO_RETRIES",
    "READ_LIMIT",
    "USER_AGENT",
    "PopClient",
]
