"""What a merchant would write without popbatch: read the file, post row by row.

pandas reads the CSV as text, one requests.Session posts each row's capture
in turn, and the answers' result codes go to a results CSV. No journal, no
retries, no validation beyond ``int(amount)``: this is the yardstick that
popbatch's own cost is measured against, not a safe way to move money.

    POP_SERVER_KEY=Test-POP-Server-Key .venv/bin/python benchmarks/plain_loop.py \\
        captures.csv --endpoint http://127.0.0.1:8080/pop/v1 --out results.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import requests


def main() -> int:
    """Capture every row of the file; 1 if any row did not succeed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--endpoint", required=True, help="POP base URL")
    parser.add_argument("--out", type=Path, default=Path("results.csv"))
    options = parser.parse_args()

    orders = pd.read_csv(options.file, dtype=str, keep_default_na=False)
    url = f"{options.endpoint}/card-capture"
    codes = []
    with requests.Session() as session:
        session.auth = (os.environ["POP_SERVER_KEY"], "")
        for order_id, amount in zip(orders["order_id"], orders["amount"], strict=True):
            body = {"order_id": order_id, "amount": int(amount), "dummy": True}
            answer = session.post(url, json=body, timeout=(5, 30))
            codes.append(answer.json().get("result_code", ""))

    orders["result_code"] = codes
    orders.to_csv(options.out, index=False)
    return 0 if all(code == "R001" for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
