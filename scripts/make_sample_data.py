"""Write the invented sample files in sample_data/ (run again to regenerate them).

Every name, order and card here is made up. The generator is seeded, so the
files it writes are the same on every machine; they are committed, and this
script documents how they were made.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import xlsxwriter

OUT = Path(__file__).resolve().parent.parent / "sample_data"

SURNAMES = [
    "佐藤",
    "鈴木",
    "高橋",
    "田中",
    "伊藤",
    "渡辺",
    "山本",
    "中村",
    "小林",
    "加藤",
]
SHOPS = [
    "青葉雑貨店",
    "さくら書房",
    "みどり園芸",
    "港町ベーカリー",
    "北斗カメラ",
    "髙橋酒店",
]
ITEMS = [
    "定期便 11月分",
    "ギフトセット",
    "年末特価品",
    "追加注文",
    "送料込み",
    "予約商品",
]

# How many of the month-end captures the sandbox is seeded to decline, and how
# many ask for more than was authorised (the sandbox answers both as failures).
DECLINED_EVERY = 41
OVER_AUTHORISED_EVERY = 97


def month_end_orders(rng: random.Random, count: int) -> list[dict[str, object]]:
    """Authorised November orders to be captured at month-end."""
    orders = []
    for n in range(1, count + 1):
        amount = rng.choice([480, 1280, 2980, 3300, 5500, 12800, 19800, 42000])
        amount += rng.randrange(0, 20) * 100
        orders.append(
            {
                "order_id": f"MEC-202611-{n:05d}",
                "amount": amount,
                "customer": f"{rng.choice(SURNAMES)} 様",
                "shop": rng.choice(SHOPS),
                "memo": rng.choice(ITEMS),
            }
        )
    return orders


def write_month_end_captures(orders: list[dict[str, object]]) -> None:
    """month_end_captures.xlsx: the demo's main job, with Japanese headers."""
    workbook = xlsxwriter.Workbook(
        str(OUT / "month_end_captures.xlsx"),
        {"strings_to_numbers": False, "strings_to_formulas": False},
    )
    sheet = workbook.add_worksheet("11月締め")
    header = workbook.add_format({"bold": True})
    yen = workbook.add_format({"num_format": "#,##0"})
    sheet.write_row(0, 0, ["注文番号", "金額", "顧客名", "店舗", "メモ"], header)
    for index, order in enumerate(orders, start=1):
        sheet.write_string(index, 0, str(order["order_id"]))
        sheet.write_number(index, 1, int(str(order["amount"])), yen)
        sheet.write_string(index, 2, str(order["customer"]))
        sheet.write_string(index, 3, str(order["shop"]))
        sheet.write_string(index, 4, str(order["memo"]))
    sheet.set_column(0, 0, 20)
    sheet.set_column(1, 1, 10)
    sheet.set_column(2, 4, 16)
    sheet.freeze_panes(1, 0)
    workbook.close()


def write_csv(path: Path, rows: list[list[str]], encoding: str) -> None:
    """Write rows with CRLF line ends, as Excel on Windows saves CSV."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))


def write_mass_refunds(rng: random.Random) -> list[dict[str, object]]:
    """mass_refunds.csv: CP932, a Japanese memo, partial and full refunds."""
    refunds = []
    rows = [["order_id", "amount", "返金理由"]]
    for n in range(1, 41):
        order_id = f"RFD-202611-{n:04d}"
        captured = rng.choice([3300, 5500, 12800])
        partial = n % 4 != 0
        amount = rng.choice([300, 500, 1000]) if partial else None
        reason = "一部返品（①点）" if partial else "全額返金・髙島屋店受付"
        refunds.append({"order_id": order_id, "captured": captured, "refund": amount})
        rows.append([order_id, f"{amount:,}" if amount else "", reason])
    write_csv(OUT / "mass_refunds.csv", rows, "cp932")
    return refunds


def write_reauthorize(rng: random.Random) -> list[dict[str, object]]:
    """reauthorize.csv: re-charge last month's subscriptions with their cards."""
    rows = [["order_id", "original_order_id", "amount", "capture"]]
    originals = []
    for n in range(1, 31):
        original = f"SUB-202610-{n:04d}"
        capture = "true" if n % 5 else "false"
        rows.append(
            [f"SUB-202611-{n:04d}", original, str(rng.choice([980, 1980])), capture]
        )
        originals.append({"order_id": original, "amount": 1980})
    write_csv(OUT / "reauthorize.csv", rows, "utf-8")
    return originals


def write_paynow_authorize(rng: random.Random) -> list[dict[str, object]]:
    """paynow_authorize.xlsx: charge stored PayNowID cards."""
    accounts = []
    workbook = xlsxwriter.Workbook(
        str(OUT / "paynow_authorize.xlsx"),
        {"strings_to_numbers": False, "strings_to_formulas": False},
    )
    sheet = workbook.add_worksheet("orders")
    columns = ["order_id", "amount", "capture", "paynow_account_id"]
    columns += ["paynow_card_id", "paynow_default_card", "memo"]
    sheet.write_row(0, 0, columns, workbook.add_format({"bold": True}))
    for n in range(1, 21):
        account = f"PN-ACCOUNT-{n:03d}"
        cards = [
            f"PNCARD{n:03d}A{rng.randrange(10**8):08d}",
            f"PNCARD{n:03d}B{rng.randrange(10**8):08d}",
        ]
        accounts.append({"account_id": account, "cards": cards})
        row = n
        sheet.write_string(row, 0, f"PNA-202611-{n:04d}")
        sheet.write_number(row, 1, rng.choice([1100, 2200, 3300]))
        sheet.write_boolean(row, 2, n % 3 != 0)
        sheet.write_string(row, 3, account)
        if n % 2:
            # Odd rows pay with the second card; even rows use the default card.
            sheet.write_string(row, 4, cards[1])
            sheet.write_boolean(row, 5, False)
        sheet.write_string(row, 6, "会員定期購入" if n % 2 else "既定カードで決済")
    workbook.close()
    return accounts


def write_typical_mistakes() -> None:
    """typical_mistakes.csv: what `popbatch validate` rejects, row by row."""
    rows = [
        ["order_id", "amount", "memo"],
        ["TM-0001", "12,000", "valid: grouped thousands"],
        ["ＴＭ－０００２", "￥3,300", "valid: full-width id and yen sign are folded"],
        ["TM-0003", "1,0000", "commas that do not group three digits"],
        ["TM-0004", "1500.5", "not a whole yen amount"],
        ["TM-0005", "", "amount missing"],
        ["TM 0006", "2000", "space inside the id"],
        ["TM-0007", "１万", "unit characters are not read"],
        ["TM-0008", "0", "below 1 yen"],
        ["TM-0009", "-500", "a sign (refunds use cancel)"],
        ["注文-0010", "2000", "Japanese characters in the id"],
        ["TM-0011", "100000000", "above 99,999,999"],
        ["TM-0012", "2000", "the same order twice"],
        ["TM-0012", "2000", "the same order twice"],
        ["TM-0014", "1e4", "an exponent"],
    ]
    write_csv(OUT / "typical_mistakes.csv", rows, "utf-8")


def write_sandbox_seed(
    captures: list[dict[str, object]],
    refunds: list[dict[str, object]],
    originals: list[dict[str, object]],
    accounts: list[dict[str, object]],
) -> None:
    """sandbox_seed.json: what the demo's sandbox knows before the run."""
    orders: list[dict[str, object]] = []
    for n, order in enumerate(captures, start=1):
        entry: dict[str, object] = {
            "order_id": order["order_id"],
            "state": "authorized",
            "amount": order["amount"],
        }
        if n % DECLINED_EVERY == 0:
            entry["decline"] = True
        if n % OVER_AUTHORISED_EVERY == 0:
            # Authorised for less than the sheet asks to capture.
            entry["amount"] = int(str(order["amount"])) - 100
        orders.append(entry)
    for refund in refunds:
        orders.append(
            {
                "order_id": refund["order_id"],
                "state": "captured",
                "amount": refund["captured"],
            }
        )
    for original in originals:
        orders.append(
            {
                "order_id": original["order_id"],
                "state": "captured",
                "amount": original["amount"],
            }
        )
    paynow = [
        {
            "account_id": account["account_id"],
            "cards": [
                {"card_id": card_id, "default": index == 0}
                for index, card_id in enumerate(account["cards"])  # type: ignore[arg-type]
            ],
        }
        for account in accounts
    ]
    seed = {"orders": orders, "paynow_accounts": paynow}
    (OUT / "sandbox_seed.json").write_text(
        json.dumps(seed, ensure_ascii=False, indent=1) + "\n"
    )


def main() -> None:
    """Regenerate every sample file."""
    OUT.mkdir(exist_ok=True)
    rng = random.Random(20261130)
    captures = month_end_orders(rng, 1200)
    write_month_end_captures(captures)
    refunds = write_mass_refunds(rng)
    originals = write_reauthorize(rng)
    accounts = write_paynow_authorize(rng)
    write_typical_mistakes()
    write_sandbox_seed(captures, refunds, originals, accounts)


if __name__ == "__main__":
    main()
