"""Fault injection: which misbehaviour a request gets, drawn repeatably.

Each fault kind has a rate (a probability per request). One draw per request
picks at most one kind, so the rates of all kinds together may not pass 1.
With a seed, the draw for a request depends only on the seed, the endpoint,
the order id and how many requests for that order came before it, so a run
is repeatable even when worker threads interleave differently.

Kinds act at three stages of a request:

- front: before the request is validated (a proxy or rate limiter answers);
  nothing is applied to the ledger;
- instead: after validation, in place of the ledger (POP answers RA01, RD01
  or RM01 without ``m_status``: not processed);
- back: after the ledger has applied the request; the answer is then lost,
  broken or replaced, which is what makes blind retries dangerous.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from email.utils import formatdate
from enum import Enum, StrEnum
from typing import Any

from popbatch.sandbox.errors import SandboxError


class Stage(Enum):
    """When a fault acts on a request."""

    FRONT = "front"
    INSTEAD = "instead"
    BACK = "back"


class FaultKind(StrEnum):
    """The misbehaviours the sandbox can inject; the value names its rate field."""

    TOO_MANY_REQUESTS = "too_many_requests"
    UNAVAILABLE = "unavailable"
    MAINTENANCE_HTML = "maintenance_html"
    CLOSE_BEFORE_APPLY = "close_before_apply"
    RA01 = "ra01"
    RD01 = "rd01"
    RM01 = "rm01"
    BAD_GATEWAY_HTML = "bad_gateway_html"
    TRUNCATED_BODY = "truncated_body"
    CLOSE_AFTER_APPLY = "close_after_apply"
    HANG = "hang"

    @property
    def stage(self) -> Stage:
        """The stage at which this kind acts."""
        return _STAGES[self]


_STAGES = {
    FaultKind.TOO_MANY_REQUESTS: Stage.FRONT,
    FaultKind.UNAVAILABLE: Stage.FRONT,
    FaultKind.MAINTENANCE_HTML: Stage.FRONT,
    FaultKind.CLOSE_BEFORE_APPLY: Stage.FRONT,
    FaultKind.RA01: Stage.INSTEAD,
    FaultKind.RD01: Stage.INSTEAD,
    FaultKind.RM01: Stage.INSTEAD,
    FaultKind.BAD_GATEWAY_HTML: Stage.BACK,
    FaultKind.TRUNCATED_BODY: Stage.BACK,
    FaultKind.CLOSE_AFTER_APPLY: Stage.BACK,
    FaultKind.HANG: Stage.BACK,
}


class RetryAfterStyle(StrEnum):
    """How 429 and 503 answers carry Retry-After (RFC 9110 allows both forms)."""

    SECONDS = "seconds"
    HTTP_DATE = "http-date"
    NONE = "none"


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Fault rates and their parameters; the default injects nothing.

    Rates are probabilities from 0 to 1 per request, and their sum may not
    pass 1. Latency is added before anything else: ``latency_s`` alone is a
    fixed delay; with ``latency_max_s`` the delay is drawn uniformly between
    the two, for a share ``latency_rate`` of the requests.
    """

    latency_s: float = 0.0
    latency_max_s: float | None = None
    latency_rate: float = 1.0
    too_many_requests: float = 0.0
    unavailable: float = 0.0
    maintenance_html: float = 0.0
    close_before_apply: float = 0.0
    ra01: float = 0.0
    rd01: float = 0.0
    rm01: float = 0.0
    bad_gateway_html: float = 0.0
    truncated_body: float = 0.0
    close_after_apply: float = 0.0
    hang: float = 0.0
    retry_after_s: int = 1
    retry_after_style: RetryAfterStyle = RetryAfterStyle.SECONDS
    not_processed_status: int = 200
    hang_limit_s: float = 600.0
    seed: int | None = None

    def __post_init__(self) -> None:
        try:
            style = RetryAfterStyle(self.retry_after_style)
        except ValueError:
            raise SandboxError(
                "retry_after_style must be 'seconds', 'http-date' or 'none'"
            ) from None
        object.__setattr__(self, "retry_after_style", style)
        for kind in FaultKind:
            _check_rate(kind.value, self.rate(kind))
        _check_rate("latency_rate", self.latency_rate)
        total = sum(self.rate(kind) for kind in FaultKind)
        if total > 1.0 + 1e-9:
            raise SandboxError(
                f"fault rates add up to {total:g}; together they may not pass 1"
            )

        if self.latency_s < 0 or (
            self.latency_max_s is not None and self.latency_max_s < self.latency_s
        ):
            raise SandboxError(
                "latency must be 0 or more, and latency_max_s at least latency_s"
            )
        for name in ("retry_after_s", "not_processed_status"):
            if type(getattr(self, name)) is not int:
                raise SandboxError(f"{name} must be a whole number")
        if self.seed is not None and type(self.seed) is not int:
            raise SandboxError("seed must be a whole number")
        if self.retry_after_s < 0:
            raise SandboxError("retry_after_s must be 0 or more")
        if not 200 <= self.not_processed_status <= 599:
            raise SandboxError("not_processed_status must be an HTTP status code")
        if self.hang_limit_s <= 0:
            raise SandboxError("hang_limit_s must be more than 0")

    def rate(self, kind: FaultKind) -> float:
        """The rate of one fault kind."""
        value: float = getattr(self, kind.value)
        return value

    @property
    def active(self) -> bool:
        """Whether any fault or latency can happen at all."""
        latency = self.latency_s > 0 or bool(self.latency_max_s)
        return latency or any(self.rate(kind) > 0 for kind in FaultKind)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Faults:
        """Build faults from JSON-like data, naming an unknown or bad field.

        Raises:
            SandboxError: a field is unknown or has the wrong type.
        """
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SandboxError(
                f"unknown fault setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )

        values = dict(data)
        for name, value in values.items():
            if name == "retry_after_style" or (
                value is None and name in ("latency_max_s", "seed")
            ):
                continue
            if not _is_number(value):
                raise SandboxError(
                    f"fault setting {name!r} must be a number, got {value!r}"
                )
        return cls(**values)


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise SandboxError(f"{name} must be a rate from 0 to 1, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Draw:
    """What one request gets: a delay before anything, and at most one fault."""

    delay_s: float = 0.0
    kind: FaultKind | None = None


NO_FAULT = Draw()


class FaultDrawer:
    """Draws faults for requests; thread-safe, repeatable when seeded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared = random.Random()

    def draw(self, faults: Faults, *, key: str) -> Draw:
        """Draw the delay and the fault for the request identified by ``key``.

        ``key`` names the request within the run (endpoint, order id and
        ordinal); with a seed, the same key always gets the same draw.
        """
        if not faults.active:
            return NO_FAULT

        if faults.seed is not None:
            return _draw_with(random.Random(f"{faults.seed}|{key}"), faults)
        with self._lock:
            return _draw_with(self._shared, faults)


def _draw_with(rng: random.Random, faults: Faults) -> Draw:
    delay = 0.0
    if faults.latency_s > 0 or faults.latency_max_s:
        wanted = rng.random() < faults.latency_rate
        high = (
            faults.latency_max_s
            if faults.latency_max_s is not None
            else faults.latency_s
        )
        drawn = rng.uniform(faults.latency_s, high)
        delay = drawn if wanted else 0.0

    point = rng.random()
    for kind in FaultKind:
        rate = faults.rate(kind)
        if point < rate:
            return Draw(delay_s=delay, kind=kind)
        point -= rate

    return Draw(delay_s=delay)


def retry_after_value(faults: Faults, *, now: float) -> str | None:
    """The Retry-After header value for a 429 or 503, or None to leave it out."""
    if faults.retry_after_style is RetryAfterStyle.NONE:
        return None
    if faults.retry_after_style is RetryAfterStyle.HTTP_DATE:
        return formatdate(now + faults.retry_after_s, usegmt=True)
    return str(faults.retry_after_s)


BAD_GATEWAY_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    "<body><h1>502 Bad Gateway</h1>\n"
    "<p>The upstream server sent no valid response. (popbatch sandbox)</p>\n"
    "</body></html>\n"
)

MAINTENANCE_PAGE = (
    '<!DOCTYPE html>\n<html lang="ja"><head><meta charset="utf-8">\n'
    "<title>システムメンテナンスのお知らせ</title></head>\n"
    "<body><h1>ただいまシステムメンテナンス中です</h1>\n"
    "<p>ご不便をおかけします。しばらくしてから再度アクセスしてください。</p>\n"
    "</body></html>\n"
)

OVERLOADED_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>{status}</title></head>\n"
    "<body><h1>{status}</h1><p>Please retry later. (popbatch sandbox)</p>"
    "</body></html>\n"
)
