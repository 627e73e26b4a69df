"""Concurrent workers see one consistent ledger: nothing is applied twice."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import requests

pytestmark = pytest.mark.sandbox

THREADS = 8


def run_threads(target, count: int = THREADS) -> None:
    """Start ``count`` threads on ``target(index)`` together and wait for them."""
    barrier = threading.Barrier(count)

    def start(index: int) -> None:
        barrier.wait()
        target(index)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_many_workers_capturing_the_same_order_capture_it_once(sandbox):
    """Eight simultaneous captures of one order: one R001, seven RM03."""
    sandbox.add_order("RACE-1", 1000)
    codes: list[str] = []
    lock = threading.Lock()
    headers = {
        "Authorization": sandbox.authorization(),
        "Content-Type": "application/json",
    }

    def capture(_: int) -> None:
        with requests.Session() as session:
            answer = session.post(
                sandbox.url("card-capture"),
                json={"order_id": "RACE-1", "amount": 1000, "dummy": True},
                headers=headers,
                timeout=10,
            )
        with lock:
            codes.append(answer.json()["result_code"])

    run_threads(capture)

    assert Counter(codes) == {"R001": 1, "RM03": THREADS - 1}
    assert (sandbox.received("RACE-1"), sandbox.applied("RACE-1")) == (THREADS, 1)


def test_concurrent_partial_refunds_never_refund_more_than_was_captured(sandbox):
    """Refunds racing on one order stop exactly at the captured amount."""
    sandbox.add_order("RACE-2", 1000, state="captured")
    headers = {
        "Authorization": sandbox.authorization(),
        "Content-Type": "application/json",
    }

    def refund(_: int) -> None:
        with requests.Session() as session:
            for _ in range(10):
                session.post(
                    sandbox.url("card-cancel"),
                    json={"order_id": "RACE-2", "amount": 30, "dummy": True},
                    headers=headers,
                    timeout=10,
                )

    run_threads(refund)

    view = sandbox.order("RACE-2")
    assert sandbox.applied("RACE-2") == 1000 // 30
    assert (view.refunded, view.balance) == (990, 10)


def test_workers_on_distinct_orders_all_succeed_and_are_counted(sandbox):
    """Keep-alive sessions in parallel: every order captured once, counted once."""
    orders = [f"PAR-{n:03d}" for n in range(THREADS * 20)]
    for order_id in orders:
        sandbox.add_order(order_id, 500)
    headers = {
        "Authorization": sandbox.authorization(),
        "Content-Type": "application/json",
    }
    failures: list[str] = []

    def capture(index: int) -> None:
        with requests.Session() as session:
            for order_id in orders[index::THREADS]:
                answer = session.post(
                    sandbox.url("card-capture"),
                    json={"order_id": order_id, "amount": 500, "dummy": True},
                    headers=headers,
                    timeout=10,
                )
                if answer.json()["result_code"] != "R001":
                    failures.append(order_id)

    run_threads(capture)

    assert failures == []
    assert (sandbox.received(), sandbox.applied()) == (len(orders), len(orders))
    assert {sandbox.order(order_id).state for order_id in orders} == {"captured"}
