"""Background jobs on a real Celery prefork worker whose database sits behind the proxy:
fork safety, kill -9 of a pool process or of the whole worker, database restarts and cuts,
lease and queue timeouts, and secret params at rest.

Jobs are queued and read by the control app in the test process, on the database directly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import signal
import time
import uuid
from typing import Any

from tests.deployment.conftest import ITEMS, Control, Deployment
from tests.deployment.harness import (
    REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    pending_messages,
    query,
    record_figures,
    runs,
    scalar,
    wait_for,
    wait_progress,
)

FINAL = frozenset({"succeeded", "failed", "cancelled"})
ALL_IDS = list(range(1, ITEMS + 1))
JOB_ROW = "SELECT row_to_json(j)::text FROM flexactions_jobs j WHERE id = %s"


def settle(
    control: Control, jobs: list[str], timeout: float, final: frozenset[str] = FINAL
) -> tuple[dict[str, dict[str, Any]], float | None]:
    """Poll the jobs until all are in ``final`` states; their last status, and the seconds
    it took (None when ``timeout`` ran out first)."""
    start = time.monotonic()
    while True:
        current = {job: control.job(job) for job in jobs}
        if all(status["state"] in final for status in current.values()):
            return current, round(time.monotonic() - start, 3)
        if time.monotonic() - start > timeout:
            return current, None
        time.sleep(0.1)


def states(current: dict[str, dict[str, Any]]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for status in current.values():
        counted[status["state"]] = counted.get(status["state"], 0) + 1
    return counted


def stuck(current: dict[str, dict[str, Any]]) -> int:
    return sum(status["state"] not in FINAL for status in current.values())


def message(status: dict[str, Any]) -> str | None:
    answer = status.get("answer") or {}
    return answer.get("message") if answer.get("result") is True else None


def owners(current: dict[str, dict[str, Any]]) -> dict[int, set[int]]:
    """PostgreSQL backend pid -> the pool pids that used it, from ``bg_whoami`` answers."""
    found: dict[int, set[int]] = {}
    for status in current.values():
        text = message(status)
        if text:
            pool_pid, backend = (int(part) for part in text.split())
            found.setdefault(backend, set()).add(pool_pid)
    return found


def rename(control: Control, ids: list[int], pause: float = 0.0, prefix: str = "bg") -> str:
    return control.queue("bg_rename", "items", ids=ids, params={"pause": pause, "prefix": prefix})


def wait_rows_flushed(deployment: Deployment, rows: int = 3) -> tuple[int, int]:
    """``(pid, rows)`` once the running ``bg_rename`` flushed ``rows`` rows."""
    return wait_progress(deployment.state_dir, "bg_rename", rows)


# a. Fork safety of the pool


def test_pool_processes_never_share_a_connection(deployment: Deployment) -> None:
    control = deployment.control()
    worker = deployment.worker(control)
    jobs = [control.queue("bg_whoami") for _ in range(6)]
    current, seconds = settle(control, jobs, 20)
    shared = {b: sorted(p) for b, p in owners(current).items() if len(p) > 1}
    record_figures(
        "a_fork_safety_celery",
        {
            "attempts": len(jobs),
            "job_states": states(current),
            "stuck_jobs": stuck(current),
            "backends_shared_by_pool_processes": len(shared),
            "pool_pids": worker.pool_pids(),
            "seconds_to_settle": seconds,
        },
    )
    assert states(current) == {"succeeded": 6}, current
    assert shared == {}, f"backend pid -> pool pids sharing it: {shared}"


# h. kill -9 of the pool process running a job


def test_kill_9_of_the_pool_process_fails_the_job_once(deployment: Deployment) -> None:
    control = deployment.control()
    worker = deployment.worker(control)
    job = rename(control, ALL_IDS, pause=0.5, prefix="h")
    pid, flushed = wait_rows_flushed(deployment)
    in_pool = pid in worker.pool_pids()
    os.kill(pid, signal.SIGKILL)
    current, seconds = settle(control, [job], 30)
    # A redelivery that ran the handler again would show within this second.
    time.sleep(1)
    handler_runs = len(runs(deployment.state_dir, "bg_rename"))
    changed = deployment.changed()
    record_figures(
        "h_kill_9_pool_process",
        {
            "attempts": 1,
            "rows_flushed_when_killed": flushed,
            "rows_changed": changed,
            "partial_writes": int(0 < changed < ITEMS),
            "job_state": current[job]["state"],
            "stuck_jobs": stuck(current),
            "duplicate_runs": max(0, handler_runs - 1),
            "seconds_kill_to_final_state": seconds,
        },
    )
    assert in_pool
    assert current[job]["state"] == "failed", current
    assert changed == 0
    assert handler_runs == 1


# i. The database restarts between jobs


def test_jobs_after_a_database_restart_all_succeed(deployment: Deployment) -> None:
    control = deployment.control()
    worker = deployment.worker(control)
    # Jobs before the restart, so that both pool processes hold pooled connections.
    before, _ = settle(control, [control.queue("bg_whoami") for _ in range(4)], 15)
    deployment.proxy.cut()
    deployment.proxy.restore()
    jobs = [control.queue("bg_whoami") for _ in range(4)]
    current, seconds = settle(control, jobs, 30)
    record_figures(
        "i_database_restart_between_jobs",
        {
            "attempts": len(jobs),
            "job_states_before_restart": states(before),
            "job_states": states(current),
            "stuck_jobs": stuck(current),
            "left_queued": sum(s["state"] == "queued" for s in current.values()),
            "seconds_to_settle": seconds,
            "pool_pids": worker.pool_pids(),
        },
    )
    assert states(current) == {"succeeded": 4}, current


def test_jobs_queued_while_the_database_is_cut_end_cleanly(deployment: Deployment) -> None:
    control = deployment.control()
    deployment.worker(control)
    before, _ = settle(control, [control.queue("bg_whoami") for _ in range(2)], 15)
    deployment.proxy.cut()
    jobs = {rename(control, [item], prefix="i"): item for item in (1, 2)}
    time.sleep(2)  # the outage lasts 2 s
    deployment.proxy.restore()
    current, seconds = settle(control, list(jobs), 60)
    names = deployment.names()
    failed_but_written = sum(
        current[job]["state"] == "failed" and names[item] != f"item {item}"
        for job, item in jobs.items()
    )
    succeeded_but_lost = sum(
        current[job]["state"] == "succeeded" and names[item] != f"i {item}"
        for job, item in jobs.items()
    )
    record_figures(
        "i_jobs_queued_during_cut",
        {
            "attempts": len(jobs),
            "job_states_before_cut": states(before),
            "job_states": states(current),
            "stuck_jobs": stuck(current),
            "partial_writes": failed_but_written,
            "writes_lost": succeeded_but_lost,
            "seconds_restore_to_settled": seconds,
        },
    )
    assert stuck(current) == 0, current
    assert failed_but_written == 0 and succeeded_but_lost == 0, (current, names)


# j. The database is cut during a running job


def test_a_cut_during_a_job_fails_it_and_rolls_back(deployment: Deployment) -> None:
    control = deployment.control()
    deployment.worker(control)
    job = rename(control, ALL_IDS, pause=0.5, prefix="j")
    _, flushed = wait_rows_flushed(deployment)
    deployment.proxy.cut()
    time.sleep(2)  # the outage lasts 2 s
    deployment.proxy.restore()
    current, seconds = settle(control, [job], 60)
    changed = deployment.changed()
    record_figures(
        "j_cut_during_job",
        {
            "attempts": 1,
            "rows_flushed_when_cut": flushed,
            "rows_changed": changed,
            "partial_writes": int(0 < changed < ITEMS),
            "job_state": current[job]["state"],
            "stuck_jobs": stuck(current),
            "seconds_restore_to_final_state": seconds,
            "handler_calls": len(runs(deployment.state_dir, "bg_rename")),
        },
    )
    assert current[job]["state"] == "failed", current
    assert changed == 0


# k. The whole worker dies; a job waits for a worker that never comes


LEASE = {"FLEXACTIONS_JOB_LEASE": 3}
QUEUE_TIMEOUT = {"FLEXACTIONS_JOB_QUEUE_TIMEOUT": 3}


def test_a_job_of_a_killed_worker_fails_after_its_lease(deployment: Deployment) -> None:
    control = deployment.control(LEASE)
    worker = deployment.worker(control, config=LEASE)
    job = rename(control, ALL_IDS, pause=0.5, prefix="k")
    wait_rows_flushed(deployment)
    worker.kill_group(signal.SIGKILL)
    worker.popen.wait(timeout=10)
    current, seconds = settle(control, [job], 3 + 10)
    changed = deployment.changed()
    record_figures(
        "k_whole_worker_killed",
        {
            "attempts": 1,
            "rows_changed": changed,
            "partial_writes": int(0 < changed < ITEMS),
            "job_state": current[job]["state"],
            "stuck_jobs": stuck(current),
            "seconds_kill_to_failed": seconds,
        },
    )
    assert current[job]["state"] == "failed", current
    assert changed == 0


def test_a_job_nobody_took_in_time_fails_and_never_runs(deployment: Deployment) -> None:
    control = deployment.control(QUEUE_TIMEOUT)
    job = rename(control, [1, 2, 3], prefix="k")
    time.sleep(4)  # no worker for 4 s: one more than FLEXACTIONS_JOB_QUEUE_TIMEOUT
    state_after_4s = control.state(job)
    deployment.worker(control, config=QUEUE_TIMEOUT)
    wait_for(
        lambda: pending_messages(deployment.queue) == 0, 20, 0.1, "the worker to finish the task"
    )
    final = control.state(job)
    handler_runs = len(runs(deployment.state_dir, "bg_rename"))
    changed = deployment.changed()
    record_figures(
        "k_queue_timeout",
        {
            "attempts": 1,
            "state_after_4s": state_after_4s,
            "state_after_a_worker_came": final,
            "stuck_jobs": int(state_after_4s not in FINAL),
            "late_runs": handler_runs,
            "rows_changed": changed,
        },
    )
    assert state_after_4s == "failed"
    assert final == "failed" and handler_runs == 0 and changed == 0


# l. Secret params at rest


def test_a_queued_secret_param_is_not_stored_in_plaintext(deployment: Deployment) -> None:
    control = deployment.control()
    secret = f"sk-live-{uuid.uuid4().hex}"
    job = control.queue("bg_secret", params={"api_key": secret})
    request = scalar(
        deployment.database, "SELECT request::text FROM flexactions_jobs WHERE id = %s", job
    )
    row = scalar(
        deployment.database,
        "SELECT row_to_json(j)::text FROM flexactions_jobs j WHERE id = %s",
        job,
    )
    in_redis = secret.encode() in b"".join(_queued_messages(deployment.queue))
    deployment.worker(control)
    current, _ = settle(control, [job], 30)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    row_after = scalar(
        deployment.database,
        "SELECT row_to_json(j)::text FROM flexactions_jobs j WHERE id = %s",
        job,
    )
    record_figures(
        "l_secret_param_of_a_queued_job",
        {
            "attempts": 1,
            "plaintext_in_request_column": secret in request,
            "plaintext_in_job_row": secret in row,
            "plaintext_in_broker_message": in_redis,
            "plaintext_in_job_row_after_run": secret in row_after,
            "job_state": current[job]["state"],
            "handler_got_the_secret": message(current[job]) == f"api_key sha256 {digest}",
        },
    )
    assert secret not in request
    assert secret not in row and not in_redis
    assert current[job]["state"] == "succeeded", current
    assert message(current[job]) == f"api_key sha256 {digest}"
    assert secret not in row_after


def _queued_messages(queue: str) -> list[bytes]:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=2)
    try:
        raw = [
            message if isinstance(message, bytes) else message.encode()
            for message in client.lrange(queue, 0, -1)
        ]
    finally:
        client.close()
    # Kombu keeps the task's arguments base64-encoded inside the message.
    decoded = []
    for message in raw:
        with contextlib.suppress(ValueError, KeyError, TypeError, binascii.Error):
            decoded.append(base64.b64decode(json.loads(message)["body"]))
    return raw + decoded


# Batched jobs (batch_size): batches spread over the pool, each exactly once


def stamps(deployment: Deployment) -> dict[int, int]:
    """Ledger rows per item, written by ``bg_stamp``."""
    rows = query(
        deployment.database,
        "SELECT item_id, count(*) FROM ledger WHERE tag = 'stamp' GROUP BY item_id",
    )
    return {int(item): int(count) for item, count in rows}


def test_batches_spread_over_the_pool_and_run_once(deployment: Deployment) -> None:
    control = deployment.control()
    worker = deployment.worker(control)
    job = control.queue("bg_stamp", "items", inverseIds=True, params={"pause": 0.05})
    current, seconds = settle(control, [job], 60)
    pids = set(runs(deployment.state_dir, "bg_stamp"))
    counted = stamps(deployment)
    record_figures(
        "batches_over_two_pool_processes",
        {
            "attempts": 1,
            "batches": 4,
            "job_state": current[job]["state"],
            "records_done": current[job]["progress"]["done"],
            "items_stamped_twice": sum(count > 1 for count in counted.values()),
            "items_missed": ITEMS - len(counted),
            "pool_processes_used": len(pids & set(worker.pool_pids())),
            "seconds_to_settle": seconds,
        },
    )
    assert current[job]["state"] == "succeeded", current
    assert counted == dict.fromkeys(range(1, ITEMS + 1), 1)
    assert current[job]["progress"]["done"] == ITEMS


def test_kill_9_mid_batch_runs_that_batch_again_and_every_item_once(
    deployment: Deployment,
) -> None:
    control = deployment.control()
    worker = deployment.worker(control)
    job = control.queue("bg_stamp", "items", inverseIds=True, params={"pause": 0.4})
    pid, flushed = wait_progress(deployment.state_dir, "bg_stamp", 2)
    in_pool = pid in worker.pool_pids()
    os.kill(pid, signal.SIGKILL)
    current, seconds = settle(control, [job], 60)
    counted = stamps(deployment)
    record_figures(
        "batches_kill_9_mid_batch",
        {
            "attempts": 1,
            "rows_flushed_when_killed": flushed,
            "job_state": current[job]["state"],
            "items_stamped_twice": sum(count > 1 for count in counted.values()),
            "items_missed": ITEMS - len(counted),
            "batch_runs": len(runs(deployment.state_dir, "bg_stamp")),
            "seconds_kill_to_final_state": seconds,
        },
    )
    assert in_pool
    assert current[job]["state"] == "succeeded", current
    assert counted == dict.fromkeys(range(1, ITEMS + 1), 1)
