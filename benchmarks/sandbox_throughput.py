"""Measure how many requests per second the sandbox serves, with no faults.

The sandbox runs as ``popbatch sandbox`` in its own process, on a free
loopback port, seeded with a few captured orders of the largest amount. A
plain client in this process (8 threads, one requests.Session each) sends
1-yen partial refunds, so every request goes through authentication,
validation and the ledger, and succeeds. The figure is printed; nothing
here asserts a time.

    .venv/bin/python benchmarks/sandbox_throughput.py [--threads 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

TEST_KEY = "Test-POP-Server-Key"
ORDERS = [f"BENCH-{index:04d}" for index in range(64)]


def main() -> int:
    """Run the measurement and print the figure; 1 if any request failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        seed = Path(folder) / "seed.json"
        orders = [
            {"order_id": o, "amount": 99_999_999, "state": "captured"} for o in ORDERS
        ]
        seed.write_text(json.dumps({"orders": orders}), encoding="utf-8")
        port_file = Path(folder) / "port"
        command = [sys.executable, "-c", "from popbatch.cli import main; main()"]
        settings = ["--port", "0", "--port-file", str(port_file), "--seed", str(seed)]
        server = subprocess.Popen(
            [*command, "sandbox", *settings], stdout=subprocess.DEVNULL
        )
        try:
            base_url = f"http://127.0.0.1:{wait_for_port(port_file, server)}/pop/v1"
            sent, failed, elapsed = measure(base_url, options.threads, options.seconds)
        finally:
            server.terminate()
            server.wait(timeout=10)

    rate = sent / elapsed
    print(
        f"sandbox throughput: {rate:.0f} requests/s "
        f"({options.threads} threads, {sent} requests in {elapsed:.1f} s, {failed} failed)"
    )
    return 1 if failed else 0


def wait_for_port(port_file: Path, server: subprocess.Popen[bytes]) -> int:
    """The port the sandbox wrote once listening."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the sandbox exited with {server.returncode}")
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        time.sleep(0.05)
    raise SystemExit("the sandbox did not start within 30 s")


def measure(base_url: str, threads: int, seconds: float) -> tuple[int, int, float]:
    """Send refunds from ``threads`` threads for ``seconds``; (sent, failed, elapsed)."""
    stop = threading.Event()
    counts = [[0, 0] for _ in range(threads)]

    def worker(index: int) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        with requests.Session() as session:
            session.auth = (TEST_KEY, "")
            while not stop.is_set():
                order_id = ORDERS[(counts[index][0] * threads + index) % len(ORDERS)]
                body = {"order_id": order_id, "amount": 1, "dummy": True}
                answer = session.post(
                    f"{base_url}/card-cancel",
                    data=json.dumps(body),
                    headers=headers,
                    timeout=10,
                )
                counts[index][0] += 1
                if (
                    answer.status_code != 200
                    or answer.json().get("result_code") != "R002"
                ):
                    counts[index][1] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started

    return sum(c[0] for c in counts), sum(c[1] for c in counts), elapsed


if __name__ == "__main__":
    sys.exit(main())
