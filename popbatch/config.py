"""Run settings as frozen values, the config file, and loading the server key.

Precedence for every setting: command line, then environment
(``POP_ENDPOINT``, ``POPBATCH_JOURNAL``), then ``popbatch.toml``, then the
defaults here. The server key is never a setting: it comes from
``--server-key-file`` or ``POP_SERVER_KEY`` only, in that order.
"""

from __future__ import annotations

import base64
import math
import os
import re
import stat
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from popbatch.errors import ConfigurationError, KeyFileExposedError, UsageError

DEFAULT_ENDPOINT = "https://pay3.veritrans.co.jp/pop/v1"
DEFAULT_OUT = Path("popbatch-results")
DEFAULT_RATE = 5.0
DEFAULT_CONCURRENCY = 4
CONFIG_FILE_NAME = "popbatch.toml"

# Keys a config file may hold; the server key is deliberately not one of them.
CONFIG_KEYS = frozenset({"endpoint", "rate", "concurrency", "journal", "out"})


class ServerKey:
    """The POP server key; it never shows itself in a repr, str or log."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "ServerKey('********')"

    __str__ = __repr__

    def authorization(self) -> str:
        """The Authorization header value: Basic base64(key + ':')."""
        token = base64.b64encode(f"{self._value}:".encode()).decode("ascii")
        return f"Basic {token}"

    def reveal(self) -> str:
        """The key itself, for code that must compare or scrub it."""
        return self._value


def load_server_key(key_file: Path | None, environ: Mapping[str, str]) -> ServerKey:
    """Read the server key from ``key_file`` or ``POP_SERVER_KEY``.

    Raises:
        KeyFileExposedError: the file can be read by group or others.
        ConfigurationError: no key was given, or it is empty.
    """
    if key_file is not None:
        return ServerKey(_read_key_file(key_file))

    value = environ.get("POP_SERVER_KEY", "").strip()
    if not value:
        raise ConfigurationError(
            "no server key: set POP_SERVER_KEY or give --server-key-file PATH",
            hint="--dry-run needs no key and sends nothing.",
        )
    return ServerKey(value)


def _read_key_file(path: Path) -> str:
    # A file that cannot be read is never named: the value given may be the
    # key itself (--server-key-file "$POP_SERVER_KEY"), and cron mails stderr.
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = _lower_first(exc.strerror or type(exc).__name__)
        raise ConfigurationError(
            f"the file given with --server-key-file cannot be read: {reason}",
            hint="Give the path of the file that holds the key (it is not shown "
            "here, in case the key itself was given).",
        ) from None
    except UnicodeDecodeError:
        raise ConfigurationError(
            f"the key file {str(path)!r} is not UTF-8 text"
        ) from None

    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileExposedError(
            f"the key file {str(path)!r} can be read by other users "
            f"(mode {stat.S_IMODE(mode):04o})",
            hint=f"Run: chmod 600 {path}",
        )
    value = text.strip()
    if not value:
        raise ConfigurationError(f"the key file {str(path)!r} is empty")
    return value


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Seconds to wait for a connection and for an answer.

    The read timeout bounds how long a SIGINT waits for requests in flight.
    """

    connect: float = 5.0
    read: float = 30.0


@dataclass(frozen=True, kw_only=True)
class RetrySettings:
    """The limits of DESIGN.md's retry rules."""

    max_attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_ceiling: float = 60.0
    stop_after_consecutive: int = 10


@dataclass(frozen=True, kw_only=True)
class ControlTotals:
    """What the person who approved the run expects of the file."""

    max_total: int | None = None
    expect_rows: int | None = None
    expect_total: int | None = None


@dataclass(frozen=True, kw_only=True)
class ReadOptions:
    """How to read the input file."""

    sheet: str | None = None
    encoding: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Everything one ``popbatch OPERATION FILE`` run was asked to do."""

    operation: str
    input_path: Path
    endpoint: str = DEFAULT_ENDPOINT
    out_dir: Path = DEFAULT_OUT
    journal_path: Path | None = None
    read: ReadOptions = field(default_factory=ReadOptions)
    live: bool = False
    yes: bool = False
    dry_run: bool = False
    skip_invalid: bool = False
    resend_unknown: bool = False
    allow_repeat: bool = False
    rate: float = DEFAULT_RATE
    concurrency: int = DEFAULT_CONCURRENCY
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetrySettings = field(default_factory=RetrySettings)
    totals: ControlTotals = field(default_factory=ControlTotals)
    csv_encoding: str = "utf-8-sig"
    quiet: bool = False

    def request_options(self) -> dict[str, Any]:
        """The options recorded with a batch (no key, nothing secret)."""
        return {
            "live": self.live,
            "endpoint": self.endpoint,
            "rate": self.rate,
            "concurrency": self.concurrency,
            "skip_invalid": self.skip_invalid,
            "allow_repeat": self.allow_repeat,
            "resend_unknown": self.resend_unknown,
            "timeouts": {"connect": self.timeouts.connect, "read": self.timeouts.read},
            "sheet": self.read.sheet,
            "encoding": self.read.encoding,
            "max_total": self.totals.max_total,
            "expect_rows": self.totals.expect_rows,
            "expect_total": self.totals.expect_total,
        }


def default_journal_path(environ: Mapping[str, str]) -> Path:
    """The journal's default place: the user's state directory (XDG)."""
    state_home = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "popbatch" / "journal.sqlite3"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The settings that the command line, environment and config file share."""

    endpoint: str
    rate: float
    concurrency: int
    journal: Path
    out: Path


def resolve_settings(
    given: Mapping[str, Any],
    *,
    config: Path | None,
    cwd: Path,
    environ: Mapping[str, str],
) -> Settings:
    """Merge the settings: command line, environment, config file, defaults.

    Args:
        given: values from the command line under the config file's names
            (``endpoint``, ``rate``, ``concurrency``, ``journal``, ``out``);
            None where the option was not given.
        config: the file given with ``--config``; without it
            ``cwd / popbatch.toml`` is read when it exists.

    Raises:
        UsageError: ``--config`` names a file that does not exist.
        ConfigurationError: the config file cannot be used, or the endpoint
            is not an http(s) URL.
    """
    merged: dict[str, Any] = {
        "endpoint": DEFAULT_ENDPOINT,
        "rate": DEFAULT_RATE,
        "concurrency": DEFAULT_CONCURRENCY,
        "journal": default_journal_path(environ),
        "out": DEFAULT_OUT,
    }
    merged.update(load_config_file(config, cwd))
    merged.update(environ_defaults(environ))
    merged.update({name: value for name, value in given.items() if value is not None})

    endpoint = str(merged["endpoint"])
    check_endpoint(endpoint)
    return Settings(
        endpoint=endpoint,
        rate=float(merged["rate"]),
        concurrency=int(merged["concurrency"]),
        journal=Path(merged["journal"]).expanduser(),
        out=Path(merged["out"]).expanduser(),
    )


def check_endpoint(endpoint: str) -> None:
    """Refuse an endpoint that is not an http:// or https:// URL with a host
    and, when one is written, a port from 1 to 65535."""
    hint = f"POP's endpoint is {DEFAULT_ENDPOINT} (the operation's path is added)."
    scheme, _, rest = endpoint.partition("://")
    if not (scheme.lower() in ("http", "https") and rest and not rest.startswith("/")):
        raise ConfigurationError(
            f"the endpoint {endpoint!r} is not an http:// or https:// URL", hint=hint
        )
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as error:
        # urlsplit's words: "Invalid IPv6 URL", "Port out of range 0-65535".
        raise ConfigurationError(
            f"the endpoint {endpoint!r} is not a valid URL ({error})", hint=hint
        ) from None
    if not parts.hostname:
        raise ConfigurationError(f"the endpoint {endpoint!r} names no host", hint=hint)
    if port == 0:
        raise ConfigurationError(
            f"the endpoint {endpoint!r} names port 0, which no server listens on",
            hint=hint,
        )


# Setting names that look like a secret: the key never lives in the file.
_SECRET_WORDS = ("key", "secret", "password", "token", "credential")


def load_config_file(path: Path | None, cwd: Path) -> dict[str, Any]:
    """Read ``popbatch.toml`` (or ``path``); an absent default file is empty.

    The settings may sit at the top of the file or in a ``[popbatch]``
    table. Relative paths (``journal``, ``out``) are taken from the config
    file's folder, so that ``--config /etc/popbatch.toml`` means the same
    wherever cron starts.

    Raises:
        UsageError: ``path`` was given and does not exist.
        ConfigurationError: the file is not TOML, names an unknown setting,
            holds a value of the wrong type, or tries to hold the server key.
    """
    target = path if path is not None else cwd / CONFIG_FILE_NAME
    if not target.exists():
        if path is not None:
            raise UsageError(
                f"the config file {str(target)!r} does not exist",
                hint="Give the path of a popbatch.toml, or leave out --config.",
            )
        return {}

    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigurationError(
            f"cannot read the config file {str(target)!r}: {reason}"
        ) from None

    table = data.get("popbatch")
    settings = dict(table) if isinstance(table, dict) else {}
    settings.update({name: value for name, value in data.items() if name != "popbatch"})
    _refuse_secrets(target, data)
    unknown = sorted(set(settings) - CONFIG_KEYS)
    if unknown:
        raise ConfigurationError(
            f"the config file {str(target)!r} has unknown settings: "
            f"{', '.join(unknown)}",
            hint=f"It may hold: {', '.join(sorted(CONFIG_KEYS))}.",
        )
    return _checked_settings(target, settings)


def _refuse_secrets(target: Path, data: Mapping[str, Any]) -> None:
    # Only the setting's name is shown: its value may be the key itself.
    names = list(data)
    table = data.get("popbatch")
    if isinstance(table, dict):
        names += [f"popbatch.{name}" for name in table]
    for name in names:
        if any(word in name.lower() for word in _SECRET_WORDS):
            raise ConfigurationError(
                f"the config file {str(target)!r} holds {name!r}: the server key "
                "never goes in the config file",
                hint="Remove it; give the key with POP_SERVER_KEY or "
                "--server-key-file PATH (mode 600).",
            )


def _checked_settings(target: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check each setting's type and range; resolve relative paths."""
    checked: dict[str, Any] = {}
    for name, value in settings.items():
        if name == "endpoint" and isinstance(value, str) and value.strip():
            checked[name] = value.strip()
        elif name == "rate" and _is_number(value) and _is_rate(float(value)):
            checked[name] = float(value)
        elif (
            name == "concurrency"
            and isinstance(value, int)
            and not isinstance(value, bool)
            and 1 <= value <= MAX_CONCURRENCY
        ):
            checked[name] = value
        elif name in ("journal", "out") and isinstance(value, str) and value.strip():
            checked[name] = target.parent / Path(value.strip()).expanduser()
        else:
            raise ConfigurationError(
                f"the config file {str(target)!r} sets {name} = {value!r}; "
                f"{name} must be {_SETTING_KINDS[name]}"
            )
    return checked


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_rate(rate: float) -> bool:
    """Whether ``rate`` can be a rate: 0 (no limit), or finite and at least MIN_RATE."""
    return rate == 0 or (math.isfinite(rate) and rate >= MIN_RATE)


MAX_CONCURRENCY = 64

MIN_RATE = 0.001
"""The slowest rate (requests per second): slower spaces two requests by more
than a quarter of an hour, which nobody means, and overflows the timer."""

_SETTING_KINDS = {
    "endpoint": 'a URL in quotes, e.g. "https://pay3.veritrans.co.jp/pop/v1"',
    "rate": (f"a number of requests per second, 0 (no limit) or from {MIN_RATE:g} up"),
    "concurrency": f"a whole number from 1 to {MAX_CONCURRENCY}",
    "journal": "a file path in quotes",
    "out": "a folder path in quotes",
}


def parse_amount_option(text: str, option: str) -> int:
    """Read a yen amount given on the command line, as a file's cell is read.

    Accepted: digits (full-width too), commas (or underscores) that group
    three digits, one leading ¥ ￥ or \\ or one trailing 円, surrounding
    spaces. Nothing else is guessed: ``1.5``, ``-5``, ``1e6``, ``1,0000``
    are refused.

    Raises:
        UsageError: the text is not a whole number of yen.
    """
    body = unicodedata.normalize("NFKC", text).strip()
    if body[:1] in ("¥", "\\"):
        body = body[1:].lstrip()
    elif body.endswith("円"):
        body = body[:-1].rstrip()
    if not _OPTION_AMOUNT.fullmatch(body):
        raise UsageError(
            f"{option} needs a whole number of yen, got {text!r}",
            hint=f"For example {option} 1200000 (or 1,200,000).",
        )
    return int(body.replace(",", "").replace("_", ""))


# Digits, or digits grouped by threes with commas or, as in Python, with
# underscores (NFKC has made ￥ into ¥).
_OPTION_AMOUNT = re.compile(r"[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,3}(?:_[0-9]{3})+")


def environ_defaults(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings the environment supplies, under the config file's names."""
    found: dict[str, Any] = {}
    if environ.get("POP_ENDPOINT", "").strip():
        found["endpoint"] = environ["POP_ENDPOINT"].strip()
    if environ.get("POPBATCH_JOURNAL", "").strip():
        found["journal"] = Path(environ["POPBATCH_JOURNAL"].strip()).expanduser()
    return found


def current_user() -> str:
    """The login name of whoever runs popbatch, for the Summary sheet."""
    for name in ("LOGNAME", "USER", "USERNAME"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return "unknown"
