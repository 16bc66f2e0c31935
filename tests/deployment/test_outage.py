"""The Messages URL under gunicorn while PostgreSQL goes away (the proxy cuts every
connection), hangs (the proxy forwards nothing) or blocks (a table lock held elsewhere)."""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.deployment.conftest import Deployment
from tests.deployment.harness import (
    ACTION_LIST,
    DB_UNAVAILABLE,
    Answer,
    Gunicorn,
    connect,
    execute,
    parallel,
    record_figures,
    server_errors,
    statuses,
)

#: What the answer to a client never shows when the database fails.
DRIVER_TEXT = (
    "psycopg",
    "OperationalError",
    "LockNotAvailable",
    "canceling statement",
    "lock timeout",
    "server closed",
    "connection",
)
#: The engine options of a deployment that bounds every wait on the database.
BOUNDED = {
    "connect_args": {
        "connect_timeout": 2,
        "options": "-c statement_timeout=3000 -c lock_timeout=2000",
    },
    "pool_timeout": 2,
}


def succeeded(answer: Answer) -> bool:
    try:
        return answer.status == 200 and answer.json().get("result") is True
    except ValueError:
        return False


def is_retry_later(answer: Answer, message: str | None = DB_UNAVAILABLE) -> bool:
    """A 503 with an integer Retry-After and one non-field error (``message`` when given),
    without any driver text."""
    if answer.status != 503 or not re.fullmatch(r"\d+", answer.header("Retry-After") or ""):
        return False
    try:
        body = answer.json()
    except ValueError:
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    if body.get("result") is not False or not isinstance(errors, dict):
        return False
    if list(errors) != ["non_field_errors"] or len(errors["non_field_errors"]) != 1:
        return False
    if message is not None:
        return bool(errors["non_field_errors"] == [message])
    return not any(text.lower() in answer.text.lower() for text in DRIVER_TEXT)


def whoami_round(server: Gunicorn, count: int = 8) -> list[Answer]:
    return parallel([lambda: server.post(execute("whoami"), None, 15)] * count, count)


# e. The database goes away, then comes back


@pytest.mark.parametrize("pre_ping", [True, False], ids=["pre-ping", "no-pre-ping"])
def test_database_outage_answers_503_and_recovers(deployment: Deployment, pre_ping: bool) -> None:
    server = deployment.gunicorn(engine_options={"pool_pre_ping": True} if pre_ping else {})
    # Every worker holds pooled connections before the outage.
    warm = whoami_round(server, 16)
    assert all(succeeded(a) for a in warm), warm[:3]
    tag = f"e-{uuid.uuid4().hex[:8]}"
    credit = execute("credit", "items", id=3, params={"amount": 11, "tag": tag})
    key = {"Idempotency-Key": f"deploy-e-{uuid.uuid4().hex}"}

    deployment.proxy.cut()
    lists = [server.post(ACTION_LIST, timeout=10) for _ in range(8)]
    during = whoami_round(server)
    keyed_during = server.post(credit, key, 15)
    deployment.proxy.restore()
    restored_at = time.monotonic()

    after: list[Answer] = []
    keyed_after: list[Answer] = []
    recovered: float | None = None
    clean_rounds = 0
    while time.monotonic() - restored_at < 10:
        batch = whoami_round(server)
        if not keyed_after or not succeeded(keyed_after[-1]):
            batch.append(server.post(credit, key, 15))
            keyed_after.append(batch[-1])
        after.extend(batch)
        if all(succeeded(a) for a in batch):
            clean_rounds += 1
            if recovered is None:
                recovered = round(time.monotonic() - restored_at, 3)
            if clean_rounds >= 2:
                break
        else:
            clean_rounds, recovered = 0, None
        time.sleep(0.1)
    ledger = deployment.ledger(tag)
    everything = lists + during + [keyed_during] + after
    record_figures(
        f"e_database_outage[{'pre-ping' if pre_ping else 'no-pre-ping'}]",
        {
            "attempts": len(everything),
            "action_list_during_outage": statuses(lists),
            "execute_during_outage": statuses(during + [keyed_during]),
            "execute_during_outage_proper_503": sum(
                is_retry_later(a) for a in during + [keyed_during]
            ),
            "after_restore": statuses(after),
            "failed_after_restore": sum(not succeeded(a) for a in after),
            "answers_5xx": server_errors(everything),
            "keyed_retry_answers": statuses(keyed_after),
            "stuck_keys": int(not any(succeeded(a) for a in keyed_after)),
            "ledger_rows": ledger,
            "duplicate_runs": max(0, ledger - 1),
            "seconds_restore_to_recovered": recovered,
            "proxy": vars(deployment.proxy.counters),
        },
    )
    assert [a.status for a in lists] == [200] * len(lists), lists[:2]
    assert all(is_retry_later(a) for a in during), during[:3]
    assert is_retry_later(keyed_during), keyed_during
    assert "500" not in server_errors(everything), [a for a in everything if a.status == 500][:3]
    assert recovered is not None, statuses(after)
    assert 409 not in [a.status for a in keyed_after] and succeeded(keyed_after[-1])
    assert ledger == 1
    if pre_ping:
        assert all(succeeded(a) for a in after), [a for a in after if not succeeded(a)][:3]
    else:
        assert all(succeeded(a) or is_retry_later(a) for a in after), statuses(after)


# f. The database hangs


def test_a_hanging_database_leaves_the_action_list_answering(deployment: Deployment) -> None:
    server = deployment.gunicorn(workers=2, threads=4, engine_options=BOUNDED)
    # One at a time: at most two pooled connections, so that of the three requests below at
    # least one waits on a pooled connection and at least one opens a new one.
    warm = [server.post(execute("whoami")) for _ in range(2)]
    assert all(succeeded(a) for a in warm), warm

    deployment.proxy.hang()
    with ThreadPoolExecutor(max_workers=3) as pool:
        # Fewer than a worker's threads, so each worker keeps a thread for other messages.
        hung = [pool.submit(server.post, execute("whoami"), None, 40) for _ in range(3)]
        time.sleep(0.5)
        lists: list[Answer] = []
        for _ in range(10):
            lists.append(server.post(ACTION_LIST, timeout=5))
            time.sleep(0.2)
        deployment.proxy.restore()
        restored_at = time.monotonic()
        after: list[Answer] = []
        recovered: float | None = None
        while time.monotonic() - restored_at < 15:
            batch = whoami_round(server, 4)
            after.extend(batch)
            if all(succeeded(a) for a in batch):
                recovered = round(time.monotonic() - restored_at, 3)
                break
            time.sleep(0.2)
        hung_answers = [future.result() for future in hung]
    everything = lists + after + hung_answers
    slowest_list = max(a.seconds for a in lists)
    record_figures(
        "f_hanging_database_proxy",
        {
            "attempts": len(everything),
            "action_list_while_hung": statuses(lists),
            "slowest_action_list_seconds": round(slowest_list, 3),
            "execute_while_hung": statuses(hung_answers),
            "seconds_of_hung_executes": sorted(round(a.seconds, 3) for a in hung_answers),
            "after_restore": statuses(after),
            "answers_5xx": server_errors(everything),
            "seconds_restore_to_recovered": recovered,
            "proxy": vars(deployment.proxy.counters),
        },
    )
    assert [a.status for a in lists] == [200] * len(lists), lists[:2]
    assert slowest_list < 1.0
    assert recovered is not None, statuses(after)
    assert "500" not in server_errors(everything), [a for a in everything if a.status == 500][:3]


def test_a_locked_table_answers_503_and_then_runs(deployment: Deployment) -> None:
    server = deployment.gunicorn(workers=2, threads=4, engine_options=BOUNDED)
    body = execute("slow_rename", "items", ids=[1, 2, 3], params={"prefix": "f"})
    with connect(deployment.database, autocommit=False) as locker:
        locker.execute("SET lock_timeout = '5s'")
        locker.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(max_workers=1) as pool:
            blocked = pool.submit(server.post, body, None, 30)
            lists: list[Answer] = []
            while not blocked.done() and len(lists) < 30:
                lists.append(server.post(ACTION_LIST, timeout=5))
                time.sleep(0.2)
            answer = blocked.result()
        locker.rollback()
    after = server.post(body, timeout=30)
    changed = deployment.changed()
    record_figures(
        "f_hanging_database_table_lock",
        {
            "attempts": 2 + len(lists),
            "blocked_answer": answer.status,
            "blocked_answer_seconds": round(answer.seconds, 3),
            "blocked_answer_retry_after": answer.header("Retry-After"),
            "action_list_while_blocked": statuses(lists),
            "slowest_action_list_seconds": round(max((a.seconds for a in lists), default=0), 3),
            "answers_5xx": server_errors([answer, after, *lists]),
            "after_release": after.status,
            "rows_changed": changed,
        },
    )
    assert is_retry_later(answer, message=None), answer
    assert answer.seconds < 6
    assert [a.status for a in lists] == [200] * len(lists) and lists
    assert max(a.seconds for a in lists) < 1.0
    assert succeeded(after), after
    assert changed == 3
