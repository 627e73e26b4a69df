"""Fixtures shared by the whole suite: the POP sandbox on 127.0.0.1.

``sandbox`` is one SandboxServer for the whole session, on a free port. Every
test that asks for it (directly or through another fixture) gets it reset
first: the shipped seed ledger, no counts, no faults, no script. So a test
can seed, script and break the sandbox as it likes without tidying up.

    def test_capture_reaches_the_sandbox_once(sandbox, tmp_path):
        sandbox.add_order("A-1", 1000)
        ... run popbatch with --endpoint sandbox.base_url ...
        assert sandbox.received("A-1") == 1
        assert sandbox.requests("A-1")[0].json == {"order_id": "A-1", "amount": 1000, "dummy": True}

``make_sandbox`` starts extra sandboxes with their own settings (another
base path, always-200 statuses, a seed file), stopped after the test.

``popbatch`` is the command line for one test, pointed at the sandbox, with
a journal and an output folder in ``tmp_path`` (see ``harness.Popbatch``);
``ws`` is the same with ``tmp_path`` as the working folder and one request
at a time, for the tests that compare whole outputs. ``tokyo`` runs a
test in Tokyo's time zone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import LIVE_KEY, Popbatch

from popbatch.sandbox import SandboxConfig, SandboxServer


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """The session's POP sandbox on 127.0.0.1 (port 0), reset before each test.

    Where it is:
        ``sandbox.base_url`` is ``http://127.0.0.1:PORT/pop/v1`` (give it to
        ``--endpoint``); ``sandbox.url("card-capture")`` is one endpoint.
    Keys:
        ``sandbox.test_key`` ("Test-POP-Server-Key": dummy must be true),
        ``sandbox.live_key`` ("Live-POP-Server-Key": dummy false allowed);
        ``sandbox.authorization(key)`` is the Authorization header value.
    Seed the ledger:
        ``sandbox.add_order("A-1", 1000)`` (authorised), with ``state=
        "captured"``, ``refunded=300``, ``decline=True`` or ``card={...}``;
        ``sandbox.add_account("ACC", [{"card_id": "C1"}], default_card="C1")``;
        ``sandbox.load_seed(path_or_mapping)`` for a whole seed file.
        ``sandbox.order("A-1")`` shows state, balance and history.
    Script answers (stub.json format of the field cases):
        ``sandbox.set_script(Path("tests/data/stubs/18-html-error-page.json"))``
        or ``sandbox.script_order("A-1", {"status": 502, "body": "<html>"},
        {"action": "close_after_read"})``.
    Faults:
        ``sandbox.set_faults(too_many_requests=1.0, retry_after_s=2)``; see
        ``popbatch.sandbox.Faults`` for every field. ``set_faults()`` clears.
    What arrived:
        ``sandbox.received("A-1")``, ``sandbox.applied("A-1", "card-cancel")``,
        ``sandbox.requests("A-1")`` (exact ``.body`` bytes, ``.json``,
        ``.headers`` without Authorization), ``sandbox.counters()``.
    """
    server = SandboxServer(SandboxConfig(live_keys=(LIVE_KEY,))).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_sandbox_for_each_test(request: pytest.FixtureRequest) -> None:
    """Reset the session sandbox before every test that uses it."""
    if "sandbox" in request.fixturenames:
        server: SandboxServer = request.getfixturevalue("sandbox")
        server.reset()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """A factory of extra, started sandboxes: ``make_sandbox(error_status=...)``.

    Keywords are SandboxConfig fields (port defaults to 0, and the live key
    is the same as the session sandbox's). Every sandbox made is stopped
    after the test.
    """
    started: list[SandboxServer] = []

    def make(**settings: Any) -> SandboxServer:
        settings.setdefault("live_keys", (LIVE_KEY,))
        server = SandboxServer(SandboxConfig(**settings)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run the test in Tokyo's time zone (TZ=Asia/Tokyo), as the finance team does."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def popbatch(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Popbatch]:
    """The popbatch command line for one test, pointed at the sandbox."""
    command_line = Popbatch(tmp_path, sandbox)
    yield command_line
    command_line.close()


@pytest.fixture
def ws(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Popbatch]:
    """A workspace folder, also the working folder, wired to the sandbox.

    Its runs send one request at a time, so that bodies and output come in
    the order of the file.
    """
    monkeypatch.chdir(tmp_path)
    workspace = Popbatch(tmp_path, sandbox, concurrency=1)
    yield workspace
    workspace.close()
