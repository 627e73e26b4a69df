"""The server key appears nowhere: not in output, logs, results, journal, repr.

A whole batch runs through the command line with a canary key, debug
logging to a log file, a retried 429, a decline, Review rows (one of them
an error page that echoes the key back) and a second run whose key POP
rejects. Then every file the runs left, and everything they printed, is
searched for the key in each form it could leak in: plain, base64, the
Authorization header's value, each read again after undoing URL escapes,
JSON and script escapes and HTML character references, however mixed, and
after decoding every hexadecimal or base64 run (line breaks removed, from
each starting offset, twice over, for base64 inside base64).
"""

from __future__ import annotations

import base64
import html
import random
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from harness import Popbatch
from run_output import Run

from popbatch.client import PopClient
from popbatch.client.keyforms import KeyScrubber
from popbatch.config import RunOptions, ServerKey, Timeouts
from popbatch.operations import CAPTURE
from popbatch.pipeline import StopSignal
from popbatch.ratelimit import RateLimiter
from popbatch.sandbox import SandboxServer

pytestmark = pytest.mark.sandbox

# 24 characters: a multiple of 3, so its base64 is also the start of the
# Authorization header's base64 (key + ":"), and either form is found.
CANARY = "Canary-Key-7f3a9c1e5b2d0"
assert len(CANARY) % 3 == 0


def leaked_forms(key: str) -> dict[str, bytes]:
    """The forms a key could leak in, as bytes to search for."""
    token = base64.b64encode(f"{key}:".encode()).decode()
    return {
        "plain": key.encode(),
        "base64": base64.b64encode(key.encode()).rstrip(b"="),
        "url-safe base64": base64.urlsafe_b64encode(key.encode()).rstrip(b"="),
        "authorization": token.rstrip("=").encode(),
        "url-encoded": quote(key, safe="").encode(),
    }


_ESCAPE = re.compile(
    r"\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})|\\x([0-9a-fA-F]{2})|\\([/\"\\])"
)


def unescaped(text: str) -> str:
    """``text`` with JSON and script escapes undone (``\\u0041``, ``\\/``...)."""

    def one(found: re.Match[str]) -> str:
        digits = found.group(1) or found.group(2) or found.group(3)
        return chr(int(digits, 16)) if digits else found.group(4)

    text = _ESCAPE.sub(one, text)
    # Escaped surrogate pairs, now two characters, become the one they spell.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def readings(data: bytes) -> list[bytes]:
    """``data``, and the text it reads as once every escape is undone, repeatedly.

    URL escapes, JSON and script escapes and HTML character references are
    undone together until nothing changes, so that a key spelled in a
    mixture of them, or escaped twice, reads as itself.
    """
    text = data.decode("utf-8", "replace")
    found = [data]
    for _ in range(5):
        undone = html.unescape(unquote(unescaped(text)))
        if undone == text:
            break
        text = undone
        found.append(text.encode("utf-8", "replace"))

    return found


def contents(path: Path) -> list[tuple[str, bytes]]:
    """A file's bytes, and for a workbook (a zip) the bytes of each member too."""
    data = path.read_bytes()
    found = [(str(path), data)]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as workbook:
            found += [
                (f"{path}!{name}", workbook.read(name)) for name in workbook.namelist()
            ]
    return found


_HEX_RUN = re.compile(rb"[0-9a-fA-F]{12,}")
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{8,}")
# Line breaks, as bytes or JSON-escaped, that wrap a base64 text (MIME).
_BREAKS = re.compile(rb"\r?\n|\\r\\n|\\n")


def decodings(data: bytes) -> list[bytes]:
    """What every hexadecimal and base64 run in ``data`` decodes to.

    Each run is decoded from each of its starting offsets (a run may begin
    with characters of something else), base64 in either alphabet, line
    breaks taken out first; what a base64 run decodes to is decoded once
    more (a token encoded again).
    """
    found = []
    for run in _HEX_RUN.findall(data):
        found += [
            bytes.fromhex(run[n:].decode()[: (len(run) - n) // 2 * 2]) for n in (0, 1)
        ]
    texts = [data]
    for _ in range(2):
        decoded = []
        for text in texts:
            for run in _BASE64_RUN.findall(_BREAKS.sub(b"", text)):
                standard = run.replace(b"-", b"+").replace(b"_", b"/")
                for n in range(4):
                    # A last group of 2 or 3 characters is padded, one of 1 dropped.
                    piece = standard[n:]
                    piece = piece[: len(piece) - (len(piece) % 4 == 1)]
                    decoded.append(base64.b64decode(piece + b"=" * (-len(piece) % 4)))
        found += decoded
        texts = decoded
    return found


def leaks(key: str, texts: list[tuple[str, bytes]]) -> list[str]:
    """Where any form of ``key`` appears, however spelled, as ``place: form``."""
    forms = leaked_forms(key)
    return sorted(
        {
            f"{place}: {name}"
            for place, data in texts
            for reading in readings(data)
            for decoded in [reading, *decodings(reading)]
            for name, form in forms.items()
            if form in decoded
        }
    )


def every_file(folder: Path) -> list[Path]:
    """Every file under ``folder``, hidden ones included."""
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_canary_key_leaks_nowhere_in_a_whole_batch(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """Results, journal, log file, stdout and stderr hold no form of the key."""
    server: SandboxServer = make_sandbox(test_keys=(CANARY,))
    for order_id in ("K-1", "K-2", "K-4", "K-5"):
        server.add_order(order_id, 1000)
    server.add_order("K-3", 1000, decline=True)
    server.script_order("K-2", {"status": 429, "headers": {"Retry-After": "0"}})
    token = base64.b64encode(f"{CANARY}:".encode()).decode()
    server.script_order(
        "K-4",
        {
            "status": 502,
            "body": f"<pre>Authorization: Basic {token}\nkey={CANARY}</pre>",
        },
    )
    server.script_order(
        "K-5", {"status": 200, "json": {"status": "failure", "result_code": "RX99"}}
    )
    file = Popbatch(tmp_path).captures(
        "capture.csv", ["K-1", "K-2", "K-3", "K-4", "K-5"]
    )
    log = tmp_path / "debug.log"
    runs = tmp_path / "runs"
    runs.mkdir()

    accepted = Popbatch(runs, server).run(
        "capture", file, "-vv", "--log-file", str(log), key=CANARY
    )
    rejected = Popbatch(runs / "rejected", make_sandbox()).run(
        "capture", file, "-vv", "--log-file", str(log), key=CANARY
    )

    assert accepted.exit_code == 3
    assert accepted.counts() == {
        "succeeded": 2,
        "failed": 1,
        "rejected": 0,
        "review": 2,
        "skipped": 0,
        "pending": 0,
    }
    assert rejected.exit_code == 78
    assert server.received("K-2") == 2
    # The echoed key reached the Review row's evidence only as a mask.
    (echoed,) = [row for row in accepted.group("review") if row["order_id"] == "K-4"]
    assert echoed["response received"] == (
        "<pre>Authorization: Basic ********\nkey=********</pre>"
    )
    assert "Authorization': 'Basic ********'" in log.read_text("utf-8")

    texts = [piece for path in every_file(tmp_path) for piece in contents(path)]
    texts += printed(accepted) + printed(rejected)
    assert {Path(place.split("!")[0]).name for place, _ in texts} >= {
        "journal.sqlite3",
        "debug.log",
        "results.xlsx",
        "review.csv",
        "summary.json",
    }
    assert leaks(CANARY, texts) == []


def printed(ran: Run) -> list[tuple[str, bytes]]:
    """What a run printed, as texts to search."""
    return [("stdout", ran.stdout.encode()), ("stderr", ran.stderr.encode())]


def test_objects_that_hold_the_key_never_show_it() -> None:
    """repr and str of the key, the client, the options, the limiter and a stop."""
    key = ServerKey(CANARY)
    client = PopClient(
        endpoint="http://127.0.0.1:9/pop/v1", key=key, timeouts=Timeouts(connect=0.5)
    )
    options = RunOptions(operation="capture", input_path=Path("capture.csv"))
    stop = StopSignal()
    try:
        outcome = client.send(CAPTURE, b"{}", order_id="K-1")
    finally:
        client.close()

    shown = [
        repr(key),
        str(key),
        repr(client),
        str(client),
        repr(options),
        repr(RateLimiter(5)),
        repr(stop),
        repr(outcome),
    ]
    texts = [(f"shown[{n}]", text.encode()) for n, text in enumerate(shown)]
    assert leaks(CANARY, texts) == []
    assert repr(key) == "ServerKey('********')"


# A key with the characters that escape differently: / + = - and letters.
# 21 characters, a multiple of 3, as above.
ODD_KEY = "Ab/Cd+Ef=Gh-secret-x9"
assert len(ODD_KEY) % 3 == 0


def spelled(key: str, *spellings: Callable[[str], str]) -> str:
    """``key`` with its characters spelled by ``spellings`` in turn."""
    return "".join(spellings[n % len(spellings)](c) for n, c in enumerate(key))


def url_lower(char: str) -> str:
    return char if char.isalnum() else f"%{ord(char):02x}"


def url_upper(char: str) -> str:
    return f"%{ord(char):02X}"


def url_twice(char: str) -> str:
    return f"%25{ord(char):02x}"


def json_u_lower(char: str) -> str:
    return f"\\u{ord(char):04x}"


def json_u_upper(char: str) -> str:
    return f"\\u{ord(char):04X}"


def json_slash(char: str) -> str:
    return "\\/" if char == "/" else char


def html_decimal(char: str) -> str:
    return f"&#{ord(char)};"


def html_decimal_zeros(char: str) -> str:
    return f"&#000{ord(char)}"


def html_hex(char: str) -> str:
    return f"&#x{ord(char):x};"


def html_hex_upper(char: str) -> str:
    return f"&#X00{ord(char):02X};"


def html_named(char: str) -> str:
    return {"/": "&sol;", "+": "&plus;", "=": "&equals;"}.get(char, char)


def html_twice(char: str) -> str:
    return f"&amp;#{ord(char)};"


def plain(char: str) -> str:
    return char


# What the 502 pages echo, one order each.
ECHOED = {
    "json-slash": spelled(ODD_KEY, json_slash),
    "json-u-lower": spelled(ODD_KEY, json_u_lower),
    "json-u-upper": spelled(ODD_KEY, json_u_upper),
    "url-lower": spelled(ODD_KEY, url_lower),
    "url-upper": spelled(ODD_KEY, url_upper),
    "url-twice": spelled(ODD_KEY, url_twice),
    "html-decimal": spelled(ODD_KEY, html_decimal),
    "html-decimal-zeros": spelled(ODD_KEY, html_decimal_zeros),
    "html-hex": spelled(ODD_KEY, html_hex),
    "html-hex-upper": spelled(ODD_KEY, html_hex_upper),
    "html-named": spelled(ODD_KEY, html_named),
    "html-twice": spelled(ODD_KEY, html_twice),
    "mixture": spelled(
        ODD_KEY, plain, url_lower, json_u_upper, html_hex, json_slash, html_decimal
    ),
    "base64": base64.b64encode(ODD_KEY.encode()).decode().rstrip("="),
    "token-url-encoded": quote(base64.b64encode(f"{ODD_KEY}:".encode()).decode()),
    "token-json-escaped": spelled(
        base64.b64encode(f"{ODD_KEY}:".encode()).decode(), json_slash, json_u_lower
    ),
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def wrapped(text: str, width: int, newline: str) -> str:
    """``text`` broken into lines of ``width`` characters, as MIME does."""
    return newline.join(text[n : n + width] for n in range(0, len(text), width))


TOKEN = b64(f"{ODD_KEY}:")

# What other 502 pages echo: the key or the token in hexadecimal, inside a
# longer base64 text at each of the three alignments, encoded twice, wrapped.
ENCODED = {
    "hex-lower": ODD_KEY.encode().hex(),
    "hex-upper": ODD_KEY.encode().hex().upper(),
    "token-hex": TOKEN.encode().hex(),
    "base64-after-4": b64(f"key={ODD_KEY}"),
    "base64-after-5": b64(f"user:{ODD_KEY}"),
    "base64-after-3-then-more": b64(f"xyz{ODD_KEY}&more=1"),
    "base64-in-json": b64(f'{{"key":"{ODD_KEY}"}}'),
    "url-safe-base64-in-json": base64.urlsafe_b64encode(
        f'{{"k": "{ODD_KEY}"}}'.encode()
    ).decode(),
    "token-base64-again": b64(TOKEN),
    "authorization-base64-again": b64(f"Basic {TOKEN}"),
    "token-mime-wrapped": wrapped(TOKEN, 8, "\r\n"),
    "base64-mime-wrapped": wrapped(b64(f"payload {ODD_KEY} end"), 10, "\n"),
}


def test_key_echoed_in_any_spelling_leaks_nowhere(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """Break 11: ``Ab\\/Cd``, ``%2f``, ``&#65;`` and mixtures reached results and journal."""
    server: SandboxServer = make_sandbox(test_keys=(ODD_KEY,))
    pages = [*ECHOED.values(), *ENCODED.values()]
    echoed = {f"E-{n}": text for n, text in enumerate(pages, start=1)}
    for order_id, text in echoed.items():
        server.add_order(order_id, 1000)
        server.script_order(
            order_id,
            {
                "status": 502,
                "headers": {"Content-Type": "text/html"},
                "body": f'<p>key {text}</p>{{"key": "{text}"}}',
            },
        )
    mixture = ECHOED["mixture"]
    scripted = {
        # POP JSON whose strings, once decoded, hold the key spelled again.
        "P-1": {
            "json": {
                "order_id": "{order_id}",
                "status": "failure",
                "result_code": "RM01",
                "message": "Gateway error",
                "m_status": "failure",
                "v_result_code": "AG48000000000000",
                "merr_msg": f"key {mixture} refused",
                mixture: "as a key",
            }
        },
        # A charset that names the key, which the Review note quotes.
        "P-2": {
            "status": 502,
            "headers": {"Content-Type": f"text/plain; charset={ECHOED['html-hex']}"},
            "body": "Bad Gateway",
        },
    }
    for order_id, answer in scripted.items():
        server.add_order(order_id, 1000)
        server.script_order(order_id, answer)
    # A Retry-After that cannot be read, quoted in the outcome the journal keeps
    # until the retry succeeds.
    server.add_order("P-3", 1000)
    server.script_order(
        "P-3", {"status": 429, "headers": {"Retry-After": ECHOED["url-lower"]}}
    )
    # A capture that succeeds after each echo: ten unknowns in a row stop a batch.
    plain_orders = [f"S-{n}" for n in range(1, len(echoed) + 1)]
    for order_id in plain_orders:
        server.add_order(order_id, 1000)
    orders = [o for pair in zip(echoed, plain_orders, strict=True) for o in pair]
    orders += [*scripted, "P-3"]
    popbatch = Popbatch(tmp_path, server, concurrency=1)
    file = popbatch.captures("capture.csv", orders)
    log = tmp_path / "debug.log"

    ran = popbatch.run("capture", file, "-vv", "--log-file", str(log), key=ODD_KEY)

    assert ran.exit_code == 3, ran.output
    assert ran.counts() == {
        "succeeded": len(plain_orders) + 1,
        "failed": 1,
        "rejected": 0,
        "review": len(echoed) + 1,
        "skipped": 0,
        "pending": 0,
    }
    review = {row["order_id"]: row for row in ran.group("review")}
    for order_id, text in echoed.items():
        received = review[order_id]["response received"]
        if text in ECHOED.values():
            assert received == '<p>key ********</p>{"key": "********"}'
        else:
            # Inside a longer base64 text, what does not depend on the key stays.
            assert received.count("********") == 2, (order_id, received)
            assert text not in received
    assert "the charset '********'" in review["P-2"]["response received"]
    assert ran.group("failed")[0]["detail"] == (
        "the payment gateway refused it: key ******** refused (RM01, gateway "
        "code AG48000000000000)"
    )
    assert server.received("P-3") == 2
    texts = [piece for path in every_file(tmp_path) for piece in contents(path)]
    texts += printed(ran)
    assert {Path(place.split("!")[0]).name for place, _ in texts} >= {
        "journal.sqlite3",
        "debug.log",
        "results.xlsx",
        "review.csv",
        "failed.csv",
        "summary.json",
    }
    assert leaks(ODD_KEY, texts) == []


@pytest.mark.parametrize("key", ["sk/A+b=c&d%e~Zq9", ODD_KEY])
def test_key_inside_base64_is_masked_at_every_offset(key: str) -> None:
    """The tester's spellings: base64 of a longer text, either alphabet, wrapped."""
    scrubber = KeyScrubber(key)
    for before in ("", "u", "us", "use", "user", "user:"):
        for after in ("", "!", "!?", "!?#"):
            raw = f"{before}{key}{after}".encode()
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                text = encode(raw).decode()
                for shown in (text, wrapped(text, 7, "\r\n"), wrapped(text, 5, "\n")):
                    masked = scrubber.text(f"debug: {shown}.")
                    assert "********" in masked, (before, after, shown)
                    assert leaks(key, [("masked", masked.encode())]) == []


def test_derived_forms_need_48_bits_of_the_key() -> None:
    """Hex and base64 inside a longer text are looked for only from 6 and 7 bytes."""
    assert KeyScrubber("k3y!9z").text("6b337921397a") == "********"
    assert KeyScrubber("k3y!9").text("6b33792139") == "6b33792139"
    assert "********" in KeyScrubber("k3y!9zQ").text(b64("user:k3y!9zQ"))
    # The key itself and its own base64 whatever its length.
    assert KeyScrubber("k3").text(f"k3 {b64('k3:')}") == "******** ********"


def test_random_base64_is_left_alone() -> None:
    """No mask lands by chance on 3 MiB of base64 of random bytes."""
    blob = base64.b64encode(bytes(random.Random(7).randbytes(3 << 20))).decode()
    assert KeyScrubber(ODD_KEY).text(blob) == blob


@pytest.mark.parametrize("key", ["sk/A+b=c&d%e~Zq9", "キー-secret-値"])
def test_bytes_are_masked_for_ascii_and_non_ascii_keys(key: str) -> None:
    """An ASCII key's bytes are searched through Latin-1, any other key's as
    UTF-8: either way the key is masked among bytes that are not UTF-8."""
    scrubber = KeyScrubber(key)
    escaped = "".join(f"%{byte:02X}" for byte in key.encode("utf-8"))
    body = b"\xff\xfe<" + key.encode("utf-8") + b"> " + escaped.encode() + b"\x80"

    masked = scrubber.data(body)

    assert masked == b"\xff\xfe<********> ********\x80"
    assert scrubber.found_in(body)
    assert not scrubber.found_in(masked)
