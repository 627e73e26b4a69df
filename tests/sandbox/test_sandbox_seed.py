"""Seed files are checked strictly, and errors name the file and the entry."""

from __future__ import annotations

import json

import pytest

from popbatch.sandbox import SandboxConfig, SandboxError, Seed, load_seed_file
from popbatch.sandbox.config import default_seed
from popbatch.sandbox.ledger import Ledger

pytestmark = pytest.mark.sandbox


def test_a_seed_file_loads_orders_in_every_state_and_accounts(tmp_path):
    """The documented format, with each state and a decline, loads as written."""
    path = tmp_path / "seed.json"
    path.write_text(
        json.dumps(
            {
                "orders": [
                    {"order_id": "A-1", "amount": 1000},
                    {
                        "order_id": "A-2",
                        "amount": 1000,
                        "state": "captured",
                        "captured": 800,
                        "refunded": 300,
                    },
                    {"order_id": "A-3", "amount": 1000, "state": "cancelled"},
                    {
                        "order_id": "A-4",
                        "amount": 1000,
                        "decline": {"v_result_code": "AG12000000000000"},
                    },
                ],
                "paynow_accounts": [
                    {"account_id": "ACC", "cards": [{"card_id": "C", "default": True}]}
                ],
            }
        ),
        encoding="utf-8",
    )

    ledger = Ledger(load_seed_file(path))

    states = [
        (v.state, v.balance)
        for v in map(ledger.order, ["A-1", "A-2", "A-3", "A-4"])
        if v
    ]
    assert states == [
        ("authorised", 1000),
        ("partially_refunded", 500),
        ("cancelled", 0),
        ("authorised", 1000),
    ]
    assert ledger.default_card("ACC") == "C"


def test_both_spellings_of_authorised_are_one_state():
    """ "authorized" (the API text's spelling) and "authorised" mean the same."""
    seed = Seed.from_mapping(
        {"orders": [{"order_id": "A-1", "amount": 5, "state": "authorized"}]}
    )

    assert [order.state for order in seed.orders] == ["authorised"]


def test_the_shipped_default_seed_loads():
    """The default seed holds the API text's example ids."""
    ledger = Ledger(default_seed())

    view = ledger.order("ORDER-0001")
    assert view is not None
    assert view.state == "authorised"
    assert ledger.default_card("TEST-ACCOUNT-101") == "232QDFCPFBR93UBEAITN7EQHL"


def test_a_thousand_order_seed_loads(tmp_path):
    """A demo-sized seed (1,000 orders) loads without trouble."""
    orders = [{"order_id": f"ME-{n:05d}", "amount": 100 + n} for n in range(1000)]
    path = tmp_path / "seed.json"
    path.write_text(json.dumps({"orders": orders}), encoding="utf-8")

    ledger = Ledger(load_seed_file(path))

    assert len(ledger) == 1000
    view = ledger.order("ME-00999")
    assert view is not None
    assert view.authorised == 1099


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "seed must be a JSON object"),
        (
            {"order": []},
            "seed: unknown key 'order' (allowed: comment, orders, paynow_accounts)",
        ),
        (
            {"orders": [{"order_id": "A 1", "amount": 1}]},
            "seed: orders[0].order_id must be 1 to 100 of A-Z a-z 0-9 - _ (got 'A 1')",
        ),
        (
            {"orders": [{"order_id": "A-1", "amount": "100"}]},
            "seed: orders[0] (A-1): amount must be an integer from 1 to 99999999 (got '100')",
        ),
        (
            {"orders": [{"order_id": "A-1", "ammount": 100}]},
            "seed: orders[0]: unknown key 'ammount' (allowed: amount, captured, card, decline, order_id, refunded, state)",
        ),
        (
            {"orders": [{"order_id": "A-1", "amount": 1, "state": "settled"}]},
            "seed: orders[0] (A-1): state must be one of authorised, captured, cancelled",
        ),
        (
            {
                "orders": [
                    {
                        "order_id": "A-1",
                        "amount": 100,
                        "state": "captured",
                        "refunded": 101,
                    }
                ]
            },
            "seed: orders[0] (A-1): refunded must be an integer from 0 to 100",
        ),
        (
            {"orders": [{"order_id": "A-1", "amount": 100, "refunded": 1}]},
            "seed: orders[0] (A-1): captured and refunded need state 'captured'",
        ),
        (
            {
                "orders": [
                    {"order_id": "A-1", "amount": 1},
                    {"order_id": "A-1", "amount": 1},
                ]
            },
            "seed: order_id 'A-1' appears more than once",
        ),
        (
            {
                "orders": [
                    {
                        "order_id": "A-1",
                        "amount": 1,
                        "card": {"masked_card_number": "4111111111111111"},
                    }
                ]
            },
            "seed: orders[0] (A-1): card: masked_card_number must look like 411111*11",
        ),
        (
            {
                "paynow_accounts": [
                    {
                        "account_id": "ACC",
                        "cards": [
                            {"card_id": "C", "default": True},
                            {"card_id": "D", "default": True},
                        ],
                    }
                ]
            },
            "seed: paynow_accounts[0] (ACC): only one card can be the default (found C, D)",
        ),
    ],
    ids=[
        "not-object",
        "unknown-top",
        "bad-id",
        "string-amount",
        "typo",
        "state",
        "over-refund",
        "refund-needs-capture",
        "duplicate",
        "full-pan",
        "two-defaults",
    ],
)
def test_a_seed_that_breaks_the_format_is_refused_with_one_line(data, message):
    """Every mistake is named, with the entry it is in."""
    with pytest.raises(SandboxError) as caught:
        Seed.from_mapping(data)

    assert str(caught.value) == message


def test_a_missing_seed_file_is_named(tmp_path):
    """The error names the file."""
    missing = tmp_path / "nope.json"

    with pytest.raises(SandboxError) as caught:
        load_seed_file(missing)

    assert str(caught.value) == f"seed file {str(missing)!r} does not exist"


def test_a_seed_file_that_is_not_json_is_named(tmp_path):
    """The error names the file and the JSON problem."""
    path = tmp_path / "seed.json"
    path.write_text("{orders: []}", encoding="utf-8")

    with pytest.raises(SandboxError) as caught:
        load_seed_file(path)

    assert str(caught.value) == (
        f"seed file {str(path)!r} is not valid JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )


def test_the_config_repr_never_shows_a_key():
    """Keys stay out of reprs, as every server key in popbatch does."""
    config = SandboxConfig(
        test_keys=("Secret-Test-Key",), live_keys=("Secret-Live-Key",)
    )

    assert "Secret" not in repr(config)


def test_add_account_refuses_a_default_card_it_does_not_hold(sandbox):
    """The Python API checks the standard card like a seed file does."""
    with pytest.raises(SandboxError) as caught:
        sandbox.add_account("ACC", [{"card_id": "C"}], default_card="X")

    assert str(caught.value) == "default_card 'X' is not one of the cards"
