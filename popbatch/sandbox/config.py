"""The sandbox's settings, as one frozen value built by the CLI or a test."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import TypeVar

from popbatch.sandbox.errors import SandboxError
from popbatch.sandbox.faults import Faults
from popbatch.sandbox.script import Script
from popbatch.sandbox.seed import Seed

# The test merchant key of the API text: it must send dummy true.
DEFAULT_TEST_KEY = "Test-POP-Server-Key"
DEFAULT_BASE_PATH = "/pop/v1"
ADMIN_PREFIX = "/_sandbox"

_Choice = TypeVar("_Choice", bound=StrEnum)


class ErrorStatus(StrEnum):
    """Which HTTP status answers that stop before the gateway carry.

    The API text names none. ``http`` (the default) answers RC17 with 401,
    RC44 with 403, RC32 with 405, RC30 with 415 and other RCxx with 400;
    ``always-200`` answers every POP JSON with 200, so that a client can be
    checked against both readings.
    """

    HTTP = "http"
    ALWAYS_200 = "always-200"


class ReauthorizeEcho(StrEnum):
    """Which order id a reauthorize answer carries.

    The API text's reauthorize examples answer with the original order's id
    (request ORDER-0002 from ORDER-0001, answer ORDER-0001); ``original`` does
    the same and is the default, ``new`` answers with the new order's id.
    """

    ORIGINAL = "original"
    NEW = "new"


@functools.cache
def default_seed() -> Seed:
    """The small seed shipped with the sandbox (accounts and a few orders).

    Read once: a Seed is immutable, and every reset starts from it again.
    """
    text = (
        resources.files("popbatch.sandbox")
        .joinpath("default_seed.json")
        .read_text("utf-8")
    )
    return Seed.from_mapping(json.loads(text), source="default_seed.json")


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """Everything a sandbox is started with; ``reset()`` returns to it.

    ``seed`` None means the shipped default seed; pass ``Seed()`` for an
    empty ledger. Keys are the user names of HTTP Basic authentication:
    ``test_keys`` are test merchants (dummy must be true), ``live_keys``
    accept dummy false as well.
    """

    host: str = "127.0.0.1"
    port: int = 0
    base_path: str = DEFAULT_BASE_PATH
    # Keys stay out of the repr, like every server key in popbatch.
    test_keys: tuple[str, ...] = field(default=(DEFAULT_TEST_KEY,), repr=False)
    live_keys: tuple[str, ...] = field(default=(), repr=False)
    seed: Seed | None = None
    script: Script | None = None
    faults: Faults = field(default_factory=Faults)
    error_status: ErrorStatus = ErrorStatus.HTTP
    reauthorize_echo: ReauthorizeEcho = ReauthorizeEcho.ORIGINAL
    access_log: bool = False
    max_body_bytes: int = 1_000_000
    keep_requests: int = 100_000

    def __post_init__(self) -> None:
        if not self.test_keys and not self.live_keys:
            raise SandboxError("the sandbox needs at least one server key")
        for key in (*self.test_keys, *self.live_keys):
            if not key or ":" in key or not key.isprintable():
                raise SandboxError(
                    "a server key must be non-empty printable text without ':'"
                )
        if set(self.test_keys) & set(self.live_keys):
            raise SandboxError("a key cannot be both a test key and a live key")
        if not 0 <= self.port <= 65535:
            raise SandboxError(f"port must be from 0 to 65535, got {self.port}")
        # Plain strings are welcome (keywords, JSON); keep the enums inside.
        object.__setattr__(self, "base_path", normalise_base_path(self.base_path))
        object.__setattr__(
            self, "error_status", _choice(ErrorStatus, self.error_status)
        )
        object.__setattr__(
            self, "reauthorize_echo", _choice(ReauthorizeEcho, self.reauthorize_echo)
        )

    def initial_seed(self) -> Seed:
        """The seed the ledger starts from and returns to on reset."""
        return default_seed() if self.seed is None else self.seed


def _choice(kind: type[_Choice], value: str) -> _Choice:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in kind)
        raise SandboxError(f"{value!r} is not one of {allowed}") from None


def normalise_base_path(path: str) -> str:
    """``/pop/v1/`` becomes ``/pop/v1``; ``/`` becomes the empty root.

    Raises:
        SandboxError: the path does not start with ``/`` or clashes with the
            admin endpoints.
    """
    if not path.startswith("/") or any(char in path for char in "?#% "):
        raise SandboxError(
            f"base path must start with '/' and be a plain path, got {path!r}"
        )
    normalised = path.rstrip("/")
    if normalised == ADMIN_PREFIX or normalised.startswith(ADMIN_PREFIX + "/"):
        raise SandboxError(
            f"base path {path!r} clashes with the admin endpoints under {ADMIN_PREFIX}"
        )
    return normalised
