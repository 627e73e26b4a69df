"""The server key appears nowhere: not in output, logs, results, journal, repr.

A whole batch runs through the command line with a canary key, debug
logging to a log file, a retried 429, a decline, Review rows (one of them
an error page that echoes the key back) and a second run whose key POP
rejects. Then every file the runs left, and everything they printed, is
searched for the key in each form it could leak in: plain, base64, the
Authorization header's value, URL-encoded.
"""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from harness import Popbatch
from run_output import Run

from popbatch.client import PopClient
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
        "authorization": token.encode(),
        "url-encoded": quote(key, safe="").encode(),
    }


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


def leaks(key: str, texts: list[tuple[str, bytes]]) -> list[str]:
    """Where any form of ``key`` appears, as ``place: form``."""
    forms = leaked_forms(key)
    return [
        f"{place}: {name}"
        for place, data in texts
        for name, form in forms.items()
        if form in data
    ]


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
