"""Concurrency: real threads, each with its own test client and so its own database session
and connection, racing on the same rows.

Transfers and refunds need row locks, so they run on PostgreSQL only; the Idempotency-Key race
runs on SQLite too (a file database, whose writers queue on its file lock).
"""

from __future__ import annotations

import decimal
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from flask_flexactions import ActionError, FlexActions
from tests.conftest import AUTH, URL
from tests.models import Account, Order, Tag, User, db
from tests.test_fault_injection import ON_POSTGRESQL, engine_of, idle_in_transaction, record_figures

needs_postgresql = pytest.mark.skipif(
    not ON_POSTGRESQL,
    reason="needs PostgreSQL (row locks): set FLEXACTIONS_TEST_DATABASE_URL",
)

ACCOUNT = "shop;account"
INSUFFICIENT = "Insufficient funds."
ALREADY = "This order was already refunded."


@pytest.fixture
def config() -> dict[str, Any]:
    # Every thread holds a connection while it waits for a row lock.
    return {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 25, "max_overflow": 10}}


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def race(
    app: Flask, bodies: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> list[Answer]:
    """POST each body from a thread of its own, all released together by a barrier."""
    barrier = threading.Barrier(len(bodies))
    answers: list[Answer | BaseException | None] = [None] * len(bodies)

    def send(index: int) -> None:
        try:
            client = app.test_client()
            barrier.wait(timeout=30)
            response = client.post(URL, json=bodies[index], headers={**AUTH, **(headers or {})})
            answers[index] = Answer(
                response.status_code, response.get_data(), dict(response.headers)
            )
        except BaseException as error:  # re-raised in the test's thread below
            answers[index] = error

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return [answer for answer in answers if isinstance(answer, Answer)]


def execute(name: str, model: str | None = None, **params: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"name": name, **params}
    if model is not None:
        message["model"] = model
    return {"name": "execute_action", "params": message}


def leaks(app: Flask) -> dict[str, int]:
    return {
        "pool_checked_out_after": engine_of(app).pool.checkedout(),
        "idle_in_transaction_after": idle_in_transaction(app),
    }


NO_LEAKS = {"pool_checked_out_after": 0, "idle_in_transaction_after": 0}


# account_transfer: 50 concurrent runs between 4 accounts


def fk(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "field": "ForeignKey",
        "required": True,
        "params": {"related_model": {"model": Account}},
    }


@needs_postgresql
def test_concurrent_transfers_keep_the_books(app: Flask, flex: FlexActions) -> None:
    start = decimal.Decimal("100.00")
    with app.app_context():
        db.session.add_all(Account(id=i, balance=start) for i in range(1, 5))
        db.session.commit()

    @flex.action(
        Account,
        name="account_transfer",
        lock=True,
        params=[fk("account_from"), fk("account_to"), {"name": "amount", "field": "DecimalField"}],
    )
    def transfer(model: type[Account], params: dict[str, Any]) -> str:
        source, target = params["account_from"], params["account_to"]
        amount = params["amount"]
        if source.balance < amount:
            raise ActionError(INSUFFICIENT)
        time.sleep(0.01)  # read, think, write: the window a lost update needs
        source.balance -= amount
        target.balance += amount
        return "Transferred."

    rng = random.Random(4)
    transfers = []
    for _ in range(50):
        source, target = rng.sample(range(1, 5), 2)
        transfers.append((source, target, decimal.Decimal(rng.randrange(10, 70))))
    answers = race(
        app,
        [
            execute(
                "account_transfer",
                ACCOUNT,
                params={"account_from": s, "account_to": t, "amount": str(a)},
            )
            for s, t, a in transfers
        ],
    )

    assert [a.status for a in answers] == [200] * 50, [a.body for a in answers if a.status != 200]
    done = [a.json() == {"result": True, "message": "Transferred."} for a in answers]
    refused = [
        a.json() == {"result": False, "errors": {"non_field_errors": [INSUFFICIENT]}}
        for a in answers
    ]
    with app.app_context(), Session(db.engine) as session:
        balances = {a.id: a.balance for a in session.scalars(sa.select(Account))}
    # Whatever order the runs took, each one that succeeded moved its amount exactly once.
    expected = dict.fromkeys(range(1, 5), start)
    for (source, target, amount), ok in zip(transfers, done, strict=True):
        if ok:
            expected[source] -= amount
            expected[target] += amount
    checks = {
        "total_balance_kept": sum(balances.values()) == 4 * start,
        "no_negative_balance": min(balances.values()) >= 0,
        "every_run_answered_done_or_refused": sum(done) + sum(refused) == 50,
        "no_lost_or_double_update": balances == expected,
    }
    found_leaks = leaks(app)
    record_figures(
        app,
        "concurrency_transfers",
        {
            "runs": 50,
            "done": sum(done),
            "refused_insufficient_funds": sum(refused),
            "answered_500": sum(a.status == 500 for a in answers),
            "invariant_violations": sum(not ok for ok in checks.values()),
            **found_leaks,
        },
    )
    assert checks == dict.fromkeys(checks, True), (balances, expected)
    assert 0 < sum(done) < 50  # both outcomes happened, so the race was real
    assert found_leaks == NO_LEAKS


# Two admins refund the same order at once


@needs_postgresql
def test_two_concurrent_refunds_refund_once(app: Flask, flex: FlexActions) -> None:
    rounds = 5
    with app.app_context():
        db.session.add_all(
            Order(id=i, total=decimal.Decimal("30.00"), refunded=0) for i in range(1, rounds + 1)
        )
        db.session.commit()
    calls: list[int] = []
    lock = threading.Lock()

    @flex.action(Order, name="refund", for_instance=True, lock=True)
    def refund(order: Order, params: dict[str, Any]) -> str:
        with lock:
            calls.append(order.id)
        if order.refunded:
            raise ActionError(ALREADY)
        time.sleep(0.2)  # both admins have read "not refunded" by now, without the lock
        # The ledger: a SQL-side increment and one row per refund, so a second refund shows.
        db.session.execute(
            sa.update(Order)
            .where(Order.id == order.id)
            .values(refunded=Order.refunded + order.total)
        )
        db.session.add(Tag(code=uuid.uuid4().hex, label=f"refund:{order.id}"))
        return "Refunded."

    outcomes = []
    for order_id in range(1, rounds + 1):
        answers = race(app, [execute("refund", "orders", id=order_id)] * 2)
        outcomes.append(sorted(a.body for a in answers))
        assert [a.status for a in answers] == [200, 200]
        assert sorted((a.json() for a in answers), key=lambda b: b["result"]) == [
            {"result": False, "errors": {"non_field_errors": [ALREADY]}},
            {"result": True, "message": "Refunded."},
        ]

    with app.app_context(), Session(db.engine) as session:
        refunded = {o.id: o.refunded for o in session.scalars(sa.select(Order))}
        ledger = sorted(t.label for t in session.scalars(sa.select(Tag)))
    found_leaks = leaks(app)
    duplicates = sum(value != decimal.Decimal("30.00") for value in refunded.values())
    record_figures(
        app,
        "concurrency_refunds",
        {
            "races": rounds,
            "requests": 2 * rounds,
            "refunds_applied": len(ledger),
            "duplicate_refunds": duplicates + len(ledger) - len(set(ledger)),
            **found_leaks,
        },
    )
    assert refunded == dict.fromkeys(range(1, rounds + 1), decimal.Decimal("30.00"))
    assert ledger == sorted(f"refund:{i}" for i in range(1, rounds + 1))
    assert sorted(calls) == sorted(list(range(1, rounds + 1)) * 2)  # both ran; one refused
    assert found_leaks == NO_LEAKS


# 20 identical requests with one Idempotency-Key


def test_parallel_requests_with_one_key_run_once(app: Flask, flex: FlexActions) -> None:
    with app.app_context():
        db.session.add(User(id=1, name="user1"))
        db.session.commit()
    calls: list[int] = []
    lock = threading.Lock()

    @flex.action(User, name="credit", for_instance=True)
    def credit(user: User, params: dict[str, Any]) -> str:
        with lock:
            calls.append(user.id)
        time.sleep(0.1)  # still running when the duplicates arrive
        db.session.add(Tag(code=uuid.uuid4().hex, label=f"credit:{user.id}"))
        return f"Credited user {user.id}."

    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = execute("credit", "users", id=1)
    answers = race(app, [body] * 20, key)
    client = app.test_client()
    later = [client.post(URL, json=body, headers={**AUTH, **key}) for _ in range(3)]
    answers += [Answer(r.status_code, r.get_data(), dict(r.headers)) for r in later]

    originals = [a for a in answers if a.status == 200 and "Idempotent-Replayed" not in a.headers]
    replays = [a for a in answers if a.headers.get("Idempotent-Replayed") == "true"]
    conflicts = [a for a in answers if a.status == 409]
    with app.app_context(), Session(db.engine) as session:
        ledger = session.scalars(sa.select(Tag.label)).all()
    found_leaks = leaks(app)
    record_figures(
        app,
        "concurrency_idempotency",
        {
            "parallel_requests": 20,
            "sequential_retries": 3,
            "handler_runs": len(calls),
            "rows_written": len(ledger),
            "duplicate_executions": max(len(calls), len(ledger)) - 1,
            "originals": len(originals),
            "replays": len(replays),
            "answered_409": len(conflicts),
            **found_leaks,
        },
    )
    assert calls == [1]
    assert ledger == ["credit:1"]
    assert len(originals) == 1
    [original] = originals
    assert original.json() == {"result": True, "message": "Credited user 1."}
    assert len(originals) + len(replays) + len(conflicts) == len(answers)
    for replay in replays:
        assert (replay.status, replay.body) == (original.status, original.body)
        assert replay.headers["Content-Type"] == original.headers["Content-Type"]
    assert len(replays) >= 3  # the retries after the first run finished
    for conflict in conflicts:
        assert conflict.json()["result"] is False
    assert found_leaks == NO_LEAKS
