"""`make demo`: the month-end capture job on the sample data, against the sandbox.

Starts the local POP sandbox on a free loopback port (seeded with the
sample orders), runs ``popbatch capture sample_data/month_end_captures.xlsx``
against it with a journal of its own, prints where the results are, and stops
the sandbox again, also when the run fails. Each demo starts from a fresh
journal and a fresh sandbox, so it can be run again and again.

The sample data holds orders that the sandbox declines, so the run itself
exits 1 ("some rows failed at POP"); the demo exits 0 when that is what
happened and the results workbook has the sheets it should.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from openpyxl import load_workbook

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"
TEST_KEY = "Test-POP-Server-Key"  # the API text's test key; the sandbox's default
EXPECTED_SHEETS = [
    "Summary",
    "Succeeded",
    "Failed",
    "Rejected",
    "Review",
    "Skipped",
    "Pending",
]


def start_sandbox(port_file: Path) -> subprocess.Popen[bytes]:
    """Start `popbatch sandbox` on a free port and wait until it listens."""
    command = [sys.executable, "-m", "popbatch", "sandbox", "--port", "0"]
    command += ["--seed", str(ROOT / "sample_data" / "sandbox_seed.json")]
    command += ["--port-file", str(port_file)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return process
        if process.poll() is not None:
            raise SystemExit(f"demo: the sandbox exited with {process.returncode}")
        time.sleep(0.05)
    process.terminate()
    raise SystemExit("demo: the sandbox did not start within 30 s")


def run_capture(port: int) -> int:
    """Run the month-end capture and return popbatch's exit code."""
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    env = dict(os.environ, POP_SERVER_KEY=TEST_KEY)
    env.pop("POP_ENDPOINT", None)
    env.pop("POPBATCH_JOURNAL", None)
    command = [sys.executable, "-m", "popbatch", "capture"]
    command += [str(ROOT / "sample_data" / "month_end_captures.xlsx")]
    command += ["--endpoint", f"http://127.0.0.1:{port}/pop/v1"]
    command += ["--journal", str(OUT / "journal.sqlite3"), "--out", str(OUT)]
    # The local sandbox takes far more than POP's default of 5 per second.
    command += ["--rate", "100", "--concurrency", "4"]
    print(
        "$ popbatch capture sample_data/month_end_captures.xlsx --rate 100 ...\n"
        "(the demo starts a new journal each time, so popbatch warns that it "
        "knows no earlier batches)",
        flush=True,
    )
    return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode


def check_results() -> Path:
    """Open the results workbook and confirm it has the named sheets."""
    workbooks = sorted(OUT.glob("*/results.xlsx"))
    if not workbooks:
        raise SystemExit("demo: no results.xlsx was written")
    workbook = load_workbook(workbooks[0], read_only=True)
    try:
        if workbook.sheetnames[: len(EXPECTED_SHEETS)] != EXPECTED_SHEETS:
            raise SystemExit(f"demo: unexpected sheets {workbook.sheetnames}")
    finally:
        workbook.close()
    return workbooks[0]


def main() -> int:
    """Run the demo; 0 when it showed successes and failures as it should."""
    with tempfile.TemporaryDirectory() as scratch:
        sandbox = start_sandbox(Path(scratch) / "port")
        try:
            port = int((Path(scratch) / "port").read_text().strip())
            code = run_capture(port)
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=10)

    if code != 1:
        print(
            f"demo: popbatch exited {code}; expected 1 (some sample orders are declined)"
        )
        return 1
    workbook = check_results()
    print()
    print(
        f"demo: done. Open {workbook.relative_to(ROOT)} (sheets: {', '.join(EXPECTED_SHEETS)})."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
