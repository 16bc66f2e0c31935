"""The Messages URL under real gunicorn workers: fork safety, one Idempotency-Key across
processes, workers killed mid-run (kill -9, gunicorn's --timeout) and a malformed body."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.deployment.conftest import ITEMS, Deployment
from tests.deployment.harness import (
    TOKEN,
    Answer,
    Gunicorn,
    alive,
    execute,
    parallel,
    progress,
    record_figures,
    runs,
    server_errors,
    statuses,
    wait_for,
    wait_progress,
)

PRELOAD = pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
REQUESTS = 200


def section(name: str, preload: bool | None = None) -> str:
    if preload is None:
        return name
    return f"{name}[{'preload' if preload else 'no-preload'}]"


def succeeded(answer: Answer) -> bool:
    if answer.status != 200:
        return False
    try:
        return answer.json().get("result") is True
    except ValueError:
        return False


# a. Fork safety


@PRELOAD
def test_no_database_connection_is_shared_by_two_workers(
    deployment: Deployment, preload: bool
) -> None:
    """200 ``whoami`` requests 8 at a time over 4 workers: each PostgreSQL backend serves
    one worker process only, and nothing answers 5xx."""
    server = deployment.gunicorn(preload=preload)
    started = time.monotonic()
    answers = parallel([lambda: server.post(execute("whoami"), timeout=10)] * REQUESTS, 8)
    seconds = time.monotonic() - started
    owners: dict[int, set[int]] = {}
    for answer in answers:
        if succeeded(answer):
            worker, backend = (int(part) for part in answer.json()["message"].split())
            owners.setdefault(backend, set()).add(worker)
    shared = {backend: sorted(pids) for backend, pids in owners.items() if len(pids) > 1}
    record_figures(
        section("a_fork_safety_gunicorn", preload),
        {
            "attempts": REQUESTS,
            "succeeded": sum(succeeded(a) for a in answers),
            "answers_by_status": statuses(answers),
            "answers_5xx": server_errors(answers),
            "no_answer": sum(a.status == 0 for a in answers),
            "backends_seen": len(owners),
            "backends_shared_by_workers": len(shared),
            "worker_pids_seen": len(set().union(*owners.values())) if owners else 0,
            "seconds": round(seconds, 3),
        },
    )
    assert shared == {}, f"backend pid -> worker pids sharing it: {shared}"
    assert server_errors(answers) == {}, [a for a in answers if a.status >= 500][:3]
    assert all(succeeded(a) for a in answers), [a for a in answers if not succeeded(a)][:3]


# b. One Idempotency-Key, 20 parallel requests across 4 workers


@PRELOAD
def test_one_key_runs_once_across_workers(deployment: Deployment, preload: bool) -> None:
    server = deployment.gunicorn(preload=preload)
    hold = deployment.state_dir / "hold-b"
    hold.touch()
    tag = f"b-{uuid.uuid4().hex[:8]}"
    body = execute("credit", "items", id=1, params={"amount": 7, "tag": tag, "hold": str(hold)})
    key = {"Idempotency-Key": f"deploy-b-{uuid.uuid4().hex}"}
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(server.post, body, key, 30) for _ in range(20)]
        # The run that got the key holds until the other 19 have answered (or 5 s).
        deadline = time.monotonic() + 5
        while sum(f.done() for f in futures) < 19 and time.monotonic() < deadline:
            time.sleep(0.05)
        hold.unlink()
        answers = [future.result() for future in futures]
    retries = [server.post(body, key) for _ in range(3)]

    originals = [a for a in answers if a.status == 200 and a.header("Idempotent-Replayed") is None]
    reference = originals[0].body if originals else None
    replays = [
        a
        for a in answers
        if a.status == 200
        and a.header("Idempotent-Replayed") == "true"
        and (reference is None or a.body == reference)
    ]
    conflicts = [a for a in answers if a.status == 409]
    unexpected = [a for a in answers if a not in originals + replays + conflicts]
    good_retries = [
        a
        for a in retries
        if a.status == 200 and a.header("Idempotent-Replayed") == "true" and a.body == reference
    ]
    ledger = deployment.ledger(tag)
    record_figures(
        section("b_one_key_across_workers", preload),
        {
            "attempts": len(answers) + len(retries),
            "original_answers": len(originals),
            "replays": len(replays),
            "conflicts_409": len(conflicts),
            "unexpected_answers": len(unexpected),
            "answers_by_status": statuses(answers + retries),
            "answers_5xx": server_errors(answers + retries),
            "ledger_rows": ledger,
            "duplicate_runs": max(0, ledger - 1),
            "writes_lost": int(ledger == 0),
            "handler_calls": len(runs(deployment.state_dir, "credit")),
            "later_retries_replayed": len(good_retries),
        },
    )
    assert ledger == 1
    assert server_errors(answers + retries) == {}
    assert len(originals) <= 1 and unexpected == [], unexpected[:3]
    assert reference is not None and json.loads(reference) == {
        "result": True,
        "message": "Credited 7.",
    }
    assert len(good_retries) == 3, retries


# c. kill -9 of the worker running a bulk action


def retry_until_it_runs(
    server: Gunicorn, body: dict[str, Any], headers: dict[str, str], since: float, within: float
) -> tuple[list[Answer], float | None]:
    """Retry until an attempt runs (200, result true); attempts start up to ``within`` seconds
    after ``since``. The answers, and when the successful one came (seconds after ``since``)."""
    answers: list[Answer] = []
    while time.monotonic() - since < within:
        answer = server.post(body, headers, 30)
        answers.append(answer)
        if succeeded(answer):
            return answers, round(time.monotonic() - since, 3)
        time.sleep(0.25)
    return answers, None


def test_kill_9_mid_bulk_commits_nothing_and_frees_the_key(deployment: Deployment) -> None:
    server = deployment.gunicorn()
    ids = list(range(1, ITEMS + 1))
    body = execute("slow_rename", "items", ids=ids, params={"pause": 0.3, "prefix": "c"})
    key = {"Idempotency-Key": f"deploy-c-{uuid.uuid4().hex}"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(server.post, body, key, 30)
        pid, done = wait_progress(deployment.state_dir, "slow_rename", 3, 15)
        assert pid in server.worker_pids()
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first_answer = first.result()
    changed_after_kill = deployment.changed()
    retries, recovered = retry_until_it_runs(server, body, key, killed_at, 10)
    changed_after_retry = deployment.changed()
    record_figures(
        "c_kill_9_mid_bulk",
        {
            "attempts": 1 + len(retries),
            "rows": ITEMS,
            "rows_flushed_when_killed": done,
            "partial_writes": int(0 < changed_after_kill < ITEMS),
            "rows_changed_after_kill": changed_after_kill,
            "rows_changed_after_retry": changed_after_retry,
            "killed_request_answer": first_answer.status,
            "retry_answers_by_status": statuses(retries),
            "answers_5xx": server_errors(retries),
            "stuck_keys": int(recovered is None),
            "seconds_kill_to_successful_retry": recovered,
            "handler_calls": len(runs(deployment.state_dir, "slow_rename")),
        },
    )
    assert changed_after_kill == 0
    assert recovered is not None, f"the key stayed taken: {statuses(retries)} {retries[-1:]}"
    assert changed_after_retry == ITEMS
    assert server_errors(retries) == {}


# d. gunicorn --timeout kills a worker holding a key


def test_timeout_kill_does_not_leave_the_key_stuck(deployment: Deployment) -> None:
    server = deployment.gunicorn(timeout=3)
    hold = deployment.state_dir / "hold-d"
    hold.touch()
    tag = f"d-{uuid.uuid4().hex[:8]}"
    body = execute("credit", "items", id=2, params={"amount": 3, "tag": tag, "hold": str(hold)})
    key = {"Idempotency-Key": f"deploy-d-{uuid.uuid4().hex}"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(server.post, body, key, 30)
        pid, _ = wait_for(
            lambda: progress(deployment.state_dir, "credit"), 15, what="the credit to start"
        )
        started = time.monotonic()
        wait_for(lambda: not alive(pid), 15, 0.1, "gunicorn to kill the timed-out worker")
        killed_at = time.monotonic()
        first_answer = first.result()
    hold.unlink()
    # A respawned worker must be there to take the retry.
    wait_for(lambda: len(server.worker_pids()) == server.workers, 15, 0.1, "a new worker")
    retries, recovered = retry_until_it_runs(server, body, key, killed_at, 10)
    ledger = deployment.ledger(tag)
    record_figures(
        "d_timeout_kill_with_key",
        {
            "attempts": 1 + len(retries),
            "seconds_until_gunicorn_killed_the_worker": round(killed_at - started, 3),
            "killed_request_answer": first_answer.status,
            "retry_answers_by_status": statuses(retries),
            "answers_5xx": server_errors(retries),
            "stuck_keys": int(recovered is None),
            "seconds_kill_to_successful_retry": recovered,
            "ledger_rows": ledger,
            "duplicate_runs": max(0, ledger - 1),
            "handler_calls": len(runs(deployment.state_dir, "credit")),
        },
    )
    assert recovered is not None, f"the key stayed taken: {statuses(retries)} {retries[-1:]}"
    assert ledger == 1


# g. A malformed chunked body


def raw_request(
    port: int, request: bytes, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2 :]
        body = decoded
    return status, headers, body


PAYLOAD = json.dumps({"name": "get_action_list"}).encode()


@pytest.mark.parametrize(
    "chunks",
    [
        b"zz\r\n" + PAYLOAD + b"\r\n0\r\n\r\n",
        b"-1\r\n" + PAYLOAD + b"\r\n0\r\n\r\n",
        # A valid size line, then more data than it announced and no CRLF after the chunk.
        b"3\r\n" + PAYLOAD + b"\r\n0\r\n\r\n",
    ],
    ids=["not-hex", "negative", "missing-terminator"],
)
def test_a_malformed_chunked_body_is_a_400(
    deployment: Deployment, chunks: bytes, request: pytest.FixtureRequest
) -> None:
    server = deployment.gunicorn(workers=2)
    raw = (
        b"POST /flex/messages/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Token {TOKEN}\r\n".encode()
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        + b"Connection: close\r\n\r\n"
        + chunks
    )
    status, headers, body = raw_request(server.port, raw)
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    record_figures(
        f"g_malformed_chunked_body[{request.node.callspec.id}]",
        {
            "attempts": 1,
            "status": status,
            "content_type": headers.get("content-type"),
            "json_body": parsed is not None,
            "answers_5xx": {str(status): 1} if status >= 500 else {},
        },
    )
    assert status == 400, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert isinstance(parsed, dict) and parsed.get("result") is False, body[:300]
