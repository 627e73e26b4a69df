"""Regression tests of the journal's identity rules (the review of journal identity).

One endpoint is one endpoint however its URL is spelled, also in journals
written before the rule, so that a file is never sent twice under two
spellings of one URL.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from popbatch.cli import main
from popbatch.errors import ExitCode
from popbatch.journal import (
    Journal,
    batch_key,
    canonical_endpoint,
    schema_version,
)
from popbatch.rows import RowRecord, RowState
from popbatch.sandbox import SandboxServer

TEST_KEY = "Test-POP-Server-Key"
SHA = "ab" * 32


# --- helpers -------------------------------------------------------------------


def write_csv(path: Path, header: str, lines: Sequence[str]) -> Path:
    """A CSV file with ``header`` and ``lines``, UTF-8."""
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def environment(tmp_path: Path, **changes: str | None) -> dict[str, str | None]:
    """The environment of a run: the test key, and the default journal under tmp_path."""
    env: dict[str, str | None] = {
        "POP_SERVER_KEY": TEST_KEY,
        "POP_ENDPOINT": None,
        "POPBATCH_JOURNAL": None,
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    env.update(changes)
    return env


def invoke(argv: Sequence[str], env: Mapping[str, str | None]) -> Result:
    """``popbatch ARGV`` in this process; the logger is given back as it was."""
    logger = logging.getLogger("popbatch")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        return CliRunner().invoke(main, list(argv), env=dict(env))
    finally:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def cancel_args(
    path: Path, endpoint: str, *, out: Path, journal: Path | None = None
) -> list[str]:
    """``popbatch cancel PATH`` against ``endpoint``, results under ``out``."""
    argv = ["cancel", str(path), "--endpoint", endpoint, "--out", str(out)]
    argv += ["--rate", "0"]
    if journal is not None:
        argv += ["--journal", str(journal)]
    return argv


# --- 2. one endpoint, however spelled ------------------------------------------


@pytest.mark.parametrize(
    "spelled",
    [
        "http://127.0.0.1/pop/v1",
        "http://127.0.0.1:80/pop/v1",
        "HTTP://127.0.0.1:80/pop/v1/",
        "http://127.0.0.1.:80/pop/v1",
        "http://127.0.0.1//pop//v1",
        "http://127.0.0.1/pop/./v1",
        "http://127.0.0.1/pop/x/../v1/",
        " http://127.0.0.1:080/pop/v1 ",
    ],
)
def test_spellings_of_one_endpoint_are_one_endpoint(spelled: str) -> None:
    """issue journal-identity: ':80' once made a second batch of a refund file."""
    assert canonical_endpoint(spelled) == "http://127.0.0.1/pop/v1"


def test_https_default_port_host_case_and_final_dot_are_dropped() -> None:
    """POP's own endpoint, spelled with its port, capitals and a rooted host name."""
    assert canonical_endpoint("HTTPS://Pay3.Veritrans.co.jp.:443/pop/v1/") == (
        "https://pay3.veritrans.co.jp/pop/v1"
    )


@pytest.mark.parametrize(
    "other",
    [
        "https://127.0.0.1/pop/v1",
        "http://127.0.0.1:443/pop/v1",
        "http://127.0.0.1:8080/pop/v1",
        "http://127.0.0.1/POP/v1",
        "http://127.0.0.2/pop/v1",
        "http://127.0.0.1/pop/v2",
    ],
)
def test_other_endpoints_stay_apart(other: str) -> None:
    """Scheme, port, path case and host tell endpoints apart."""
    assert canonical_endpoint(other) != canonical_endpoint("http://127.0.0.1/pop/v1")


def test_ipv6_hosts_keep_their_brackets() -> None:
    """An IPv6 literal loses its default port, not its brackets."""
    assert canonical_endpoint("http://[::1]:80/pop/v1") == "http://[::1]/pop/v1"
    assert canonical_endpoint("http://[::1]:8080/pop/v1") == "http://[::1]:8080/pop/v1"


@pytest.mark.sandbox
def test_the_default_port_spelled_out_finds_the_same_batch(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """issue journal-identity: the reviewer's reproduction, on port 80."""
    try:
        server = make_sandbox(port=80)
    except OSError as error:
        pytest.skip(f"cannot listen on port 80 here: {error}")
    server.add_order("EP-1", 10_000, state="captured")
    path = write_csv(tmp_path / "refunds.csv", "order_id,amount", ["EP-1,1000"])
    env = environment(tmp_path)
    out = tmp_path / "out"

    first = invoke(cancel_args(path, "http://127.0.0.1/pop/v1", out=out), env)
    again = invoke(cancel_args(path, "http://127.0.0.1:80/pop/v1", out=out), env)

    assert (first.exit_code, again.exit_code) == (0, 0)
    assert again.stderr.startswith("batch 1 already finished on ")
    assert server.applied("EP-1") == 1


@pytest.mark.sandbox
def test_another_spelling_of_the_sandbox_url_finds_the_same_batch(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Capitals, a dot segment and a final slash: still batch 1, nothing sent."""
    sandbox.add_order("EP-2", 10_000, state="captured")
    path = write_csv(tmp_path / "refunds.csv", "order_id,amount", ["EP-2,1000"])
    env = environment(tmp_path)
    out = tmp_path / "out"
    spelled = sandbox.base_url.replace("http://", "HTTP://").replace(
        "/pop/v1", "/pop/x/../v1/"
    )

    first = invoke(cancel_args(path, sandbox.base_url, out=out), env)
    again = invoke(cancel_args(path, spelled, out=out), env)

    assert (first.exit_code, again.exit_code) == (0, 0)
    assert again.stderr.startswith("batch 1 already finished on ")
    assert sandbox.applied("EP-2") == 1


def old_canonical_endpoint(endpoint: str) -> str:
    """The canonical form journals of schema version 1 hold: host case, final slash."""
    scheme, _, rest = endpoint.strip().partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")


def make_version_1(path: Path, spelled: dict[int, str]) -> None:
    """Turn a journal into one written before endpoints were canonical as now.

    ``spelled`` maps batch ids to the endpoint their command gave; each
    batch's endpoint and key take the form the version 1 rule made of it.
    The tables of version 1 are those of today, so the data says it all.
    """
    conn = sqlite3.connect(path)
    for batch_id, endpoint in spelled.items():
        key, stored = conn.execute(
            "SELECT key, endpoint FROM batches WHERE id = ?", (batch_id,)
        ).fetchone()
        old = old_canonical_endpoint(endpoint)
        conn.execute(
            "UPDATE batches SET key = ?, endpoint = ? WHERE id = ?",
            (key.replace(stored, old, 1), old, batch_id),
        )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


@pytest.mark.sandbox
def test_a_batch_of_a_version_1_journal_is_found_by_the_command_that_made_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """issue journal-identity: keys made by the old rule are migrated, not orphaned."""
    sandbox.add_order("MG-1", 10_000, state="captured")
    path = write_csv(tmp_path / "refunds.csv", "order_id,amount", ["MG-1,1000"])
    other = write_csv(tmp_path / "more.csv", "order_id,amount,memo", ["MG-1,1000,x"])
    journal = tmp_path / "journal.sqlite3"
    env = environment(tmp_path)
    spelled = sandbox.base_url.replace("/pop/v1", "/pop/./v1")
    out = tmp_path / "out"
    first = invoke(cancel_args(path, spelled, out=out, journal=journal), env)
    make_version_1(journal, {1: spelled})

    same = invoke(cancel_args(path, spelled, out=out, journal=journal), env)
    plain = invoke(cancel_args(path, sandbox.base_url, out=out, journal=journal), env)
    repeat = invoke(cancel_args(other, sandbox.base_url, out=out, journal=journal), env)

    assert (first.exit_code, same.exit_code, plain.exit_code) == (0, 0, 0)
    assert same.stderr.startswith("batch 1 already finished on ")
    assert plain.stderr.startswith("batch 1 already finished on ")
    assert repeat.exit_code == ExitCode.ROWS_FAILED
    assert "would repeat a refund that already succeeded" in repeat.stderr
    assert sandbox.applied("MG-1") == 1
    with Journal.open(journal) as opened:
        batches = opened.list_batches()
    assert [batch.endpoint for batch in batches] == [sandbox.base_url] * 2
    assert batches[0].key.endswith(f":{sandbox.base_url}:|utf-8")


def test_migration_gives_a_key_spelled_twice_to_one_batch_and_keeps_both_in_history(
    tmp_path: Path,
) -> None:
    """Two version 1 batches of one file, with and without ':80', become one endpoint."""
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        for endpoint, order_id in (
            ("http://127.0.0.1:80/pop/v1", "A-1"),
            ("http://127.0.0.1/pop/v1/", "A-2"),
        ):
            batch = journal.create_batch(
                key=f"capture:test:{SHA}:{old_canonical_endpoint(endpoint)}",
                operation="capture",
                input_path="february.csv",
                input_sha256=SHA,
                input_kind="csv",
                encoding="utf-8",
                delimiter=",",
                sheet=None,
                headers=("order_id", "amount"),
                columns={"order_id": 0, "amount": 1},
                live=False,
                endpoint=endpoint,
                options={},
            )
            journal.add_rows(
                batch.id,
                [
                    RowRecord(
                        row=2,
                        cells=(order_id, "1000"),
                        state=RowState.SUCCEEDED,
                        order_id=order_id,
                        amount=1000,
                    )
                ],
            )
    make_version_1(
        path, {1: "http://127.0.0.1:80/pop/v1", 2: "http://127.0.0.1/pop/v1/"}
    )

    with Journal.open(path) as journal:
        batches = journal.list_batches()
        found = journal.find_batch(
            batch_key("capture", SHA, False, "http://127.0.0.1:80/pop/v1")
        )
        history = journal.history(
            ["A-1", "A-2"], live=False, endpoint="http://127.0.0.1:80/pop/v1/"
        )
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()

    assert version == schema_version()
    assert [(batch.key, batch.endpoint) for batch in batches] == [
        (f"capture:test:{SHA}:http://127.0.0.1:80/pop/v1", "http://127.0.0.1/pop/v1"),
        (f"capture:test:{SHA}:http://127.0.0.1/pop/v1", "http://127.0.0.1/pop/v1"),
    ]
    assert found is not None
    assert found.id == 2
    assert {
        order_id: [e.batch_id for e in entries] for order_id, entries in history.items()
    } == {
        "A-1": [1],
        "A-2": [2],
    }
