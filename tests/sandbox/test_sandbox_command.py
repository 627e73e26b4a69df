"""``popbatch sandbox``: its options, its one-line errors, and a clean stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from popbatch import cli

pytestmark = pytest.mark.sandbox

FAULT_OPTIONS = [
    "--latency",
    "--latency-max",
    "--latency-rate",
    "--fault-429",
    "--fault-503",
    "--retry-after",
    "--retry-after-style",
    "--fault-502-html",
    "--fault-200-html",
    "--fault-truncate",
    "--fault-close-before",
    "--fault-close-after",
    "--fault-hang",
    "--hang-limit",
    "--fault-ra01",
    "--fault-rd01",
    "--fault-rm01",
    "--not-processed-status",
    "--seed-random",
]


def run_sandbox(*arguments: str) -> subprocess.Popen[str]:
    """Start ``popbatch sandbox`` in its own process, as a script would."""
    command = [sys.executable, "-c", "from popbatch.cli import main; main()", "sandbox"]
    return subprocess.Popen(
        [*command, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_port(port_file: Path, process: subprocess.Popen[str]) -> int:
    """The port from the port file, once the sandbox has written it."""
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the sandbox did not start"
        time.sleep(0.05)
    return int(port_file.read_text())


def test_help_lists_every_fault_option():
    """Every fault is settable from the command line, and --help says how."""
    result = CliRunner().invoke(cli.main.commands["sandbox"], ["--help"])

    assert result.exit_code == 0
    for option in [
        *FAULT_OPTIONS,
        "--seed",
        "--script",
        "--key",
        "--live-key",
        "--port-file",
        "--base-path",
    ]:
        assert f"  {option} " in result.output


def test_a_missing_seed_file_is_one_line_and_exit_78(tmp_path):
    """No traceback: the error names the file."""
    missing = tmp_path / "seed.json"

    result = CliRunner().invoke(
        cli.main, ["sandbox", "--port", "0", "--seed", str(missing)]
    )

    assert result.exit_code == 78
    assert result.stderr == f"Error: seed file {str(missing)!r} does not exist\n"


def test_a_seed_file_with_bad_json_is_one_line_and_exit_78(tmp_path):
    """The error names the file and where the JSON breaks."""
    seed = tmp_path / "seed.json"
    seed.write_text('{"orders": [}', encoding="utf-8")

    result = CliRunner().invoke(
        cli.main, ["sandbox", "--port", "0", "--seed", str(seed)]
    )

    assert result.exit_code == 78
    assert result.stderr == (
        f"Error: seed file {str(seed)!r} is not valid JSON: "
        "Expecting value: line 1 column 13 (char 12)\n"
    )


def test_a_script_that_breaks_the_format_is_one_line_and_exit_78(tmp_path):
    """Script mistakes stop the start, naming the file and the answer."""
    script = tmp_path / "stub.json"
    script.write_text(
        json.dumps({"orders": {"A-1": [{"action": "explode"}]}}), encoding="utf-8"
    )

    result = CliRunner().invoke(
        cli.main, ["sandbox", "--port", "0", "--script", str(script)]
    )

    assert result.exit_code == 78
    assert result.stderr == (
        "Error: stub.json: orders['A-1'][0]: action must be one of close_after_read, hang, pass\n"
    )


def test_a_port_in_use_is_one_line_and_exit_78():
    """The error names the address and how to get a free port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner().invoke(cli.main, ["sandbox", "--port", str(port)])

    assert result.exit_code == 78
    assert result.stderr == (
        f"Error: cannot listen on 127.0.0.1:{port}: the port is in use; "
        "choose another --port, or --port 0 for a free one\n"
    )


def test_fault_rates_above_one_in_total_are_refused():
    """One draw per request picks at most one fault, so the rates share 1."""
    result = CliRunner().invoke(
        cli.main,
        ["sandbox", "--port", "0", "--fault-429", "0.6", "--fault-hang", "0.6"],
    )

    assert result.exit_code == 78
    assert (
        result.stderr
        == "Error: fault rates add up to 1.2; together they may not pass 1\n"
    )


@pytest.mark.parametrize(
    "stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"]
)
def test_the_command_serves_on_port_0_and_stops_cleanly_on_a_signal(tmp_path, stop):
    """A script learns the port, talks POP, and stops it with a signal: exit 0."""
    port_file = tmp_path / "sandbox.port"
    process = run_sandbox(
        "--port", "0", "--port-file", str(port_file), "--live-key", "Live-1"
    )
    try:
        port = wait_for_port(port_file, process)
        line = process.stdout.readline() if process.stdout else ""
        answer = requests.post(
            f"http://127.0.0.1:{port}/pop/v1/card-capture",
            json={"order_id": "ORDER-0001", "amount": 10000, "dummy": False},
            auth=("Live-1", ""),
            timeout=10,
        )
        process.send_signal(stop)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert line == f"listening on http://127.0.0.1:{port}/pop/v1\n"
    assert answer.json()["result_code"] == "R001"
    assert (process.returncode, out, err) == (0, "", "")
    assert not port_file.exists()


def test_the_command_serves_a_seed_and_a_script_from_files(tmp_path):
    """--seed replaces the shipped seed; --script answers for scripted orders."""
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps({"orders": [{"order_id": "S-1", "amount": 100}]}), encoding="utf-8"
    )
    script = tmp_path / "stub.json"
    script.write_text(
        json.dumps({"orders": {"S-2": [{"status": 502, "body": "down"}]}}),
        encoding="utf-8",
    )
    port_file = tmp_path / "port"
    options = [
        "--port-file",
        str(port_file),
        "--seed",
        str(seed),
        "--script",
        str(script),
    ]
    process = run_sandbox("--port", "0", "--base-path", "/pop/v2", *options)
    try:
        base = f"http://127.0.0.1:{wait_for_port(port_file, process)}"
        with requests.Session() as session:
            session.auth = ("Test-POP-Server-Key", "")
            codes = [
                session.post(
                    f"{base}/pop/v2/card-capture",
                    json={"order_id": order_id, "amount": 100, "dummy": True},
                    timeout=10,
                )
                for order_id in ["S-1", "S-2", "ORDER-0001"]
            ]
            counters = session.get(f"{base}/_sandbox/counters", timeout=10).json()
        process.terminate()
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert codes[0].json()["result_code"] == "R001"
    assert (codes[1].status_code, codes[1].text) == (502, "down")
    assert codes[2].json()["result_code"] == "RM03"
    assert (counters["received"], counters["applied"]) == (3, 1)
