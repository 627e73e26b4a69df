"""The plain loop with 8 threads: what a merchant would write to go faster.

pandas reads the CSV as text; a pool of 8 threads, each with its own
requests.Session, posts the captures; the result codes go to a results CSV
in the input's order. Still no journal, no retries and no rate limit: it
shows how much throughput threads alone give, which is what popbatch's
``--concurrency 8`` is compared with.

    POP_SERVER_KEY=Test-POP-Server-Key .venv/bin/python benchmarks/plain_pool.py \\
        captures.csv --endpoint http://127.0.0.1:8080/pop/v1 --out results.csv
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import requests

THREADS = 8


def main() -> int:
    """Capture every row of the file; 1 if any row did not succeed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--endpoint", required=True, help="POP base URL")
    parser.add_argument("--out", type=Path, default=Path("results.csv"))
    parser.add_argument("--threads", type=int, default=THREADS)
    options = parser.parse_args()

    orders = pd.read_csv(options.file, dtype=str, keep_default_na=False)
    url = f"{options.endpoint}/card-capture"
    key = os.environ["POP_SERVER_KEY"]
    local = threading.local()

    def capture(order_id: str, amount: str) -> str:
        # One Session per thread: sharing one across threads is not documented.
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.auth = (key, "")
        body = {"order_id": order_id, "amount": int(amount), "dummy": True}
        answer = session.post(url, json=body, timeout=(5, 30))
        code: str = answer.json().get("result_code", "")
        return code

    with ThreadPoolExecutor(max_workers=options.threads) as pool:
        codes = list(pool.map(capture, orders["order_id"], orders["amount"]))

    orders["result_code"] = codes
    orders.to_csv(options.out, index=False)
    return 0 if all(code == "R001" for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
