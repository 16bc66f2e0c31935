"""The benchmarks run at a tiny size, so they cannot rot; no timing is asserted."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks import action_list, batches, bulk, instructions, load, overhead
from tests.test_background import redis_is_up


def url(tmp_path: Path) -> str:
    return os.environ.get("FLEXACTIONS_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'b.db'}"


def test_overhead(tmp_path: Path) -> None:
    report = overhead.run(url(tmp_path), overhead.QUICK)
    text = report.render()
    assert "hand-written Flask view" in text
    for label in ('FLEXACTIONS_AUDIT="table"', "Idempotency-Key", "scope hook", "lock=True"):
        assert label in text
    assert report.headlines[0].value > 0
    assert "through its route" in text and report.headlines[1].value > 0


@pytest.mark.parametrize("case", sorted(instructions.CASES))
def test_each_instruction_case_runs(tmp_path: Path, case: str) -> None:
    instructions._child(case, url(tmp_path), 2)


@pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind is not installed (apt-get install valgrind)"
)
def test_instructions_are_counted_under_valgrind(tmp_path: Path) -> None:
    assert instructions._instructions("hand", f"sqlite:///{tmp_path / 'v.db'}", 1) > 1_000_000


def test_bulk(tmp_path: Path) -> None:
    report = bulk.run(url(tmp_path), bulk.QUICK)
    assert [h.value for h in report.headlines][0] == 0  # one statement for 10 and 100 ids
    assert "inverseIds" in report.render()
    assert "atomic=False" in report.render()


def test_action_list(tmp_path: Path) -> None:
    report = action_list.run(url(tmp_path), action_list.QUICK)
    assert "json.dumps" in report.render()
    assert len(report.headlines) == 2  # the shared token and the caller with roles


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
@pytest.mark.skipif(shutil.which("gunicorn") is None, reason="gunicorn is not installed")
def test_load(tmp_path: Path) -> None:
    report = load.run(url(tmp_path), load.QUICK)
    assert report.headlines[0].value == 0, report.render()


@pytest.mark.skipif(not redis_is_up(), reason="needs Redis on 127.0.0.1:6379 for Celery workers")
def test_batches(tmp_path: Path) -> None:
    report = batches.run(url(tmp_path), batches.QUICK, log_dir=tmp_path)
    text = report.render()
    assert "batched job, 2 worker processes" in text
    assert {h.name.split(" (")[0] for h in report.headlines} == {
        "batched job time / keyset loop",
        "speedup of 2 worker processes",
        "peak RSS of a worker process, MiB",
        "queueing request, ms",
    }
