"""Instructions per request, counted by valgrind's callgrind instead of timed.

The overhead benchmark's views (the hand-written view, the record action through the Messages
URL and through its route, the audit table, an Idempotency-Key) each run in a process of their
own under ``valgrind --tool=callgrind``, once with no measured request and once with ``n``; the
difference over ``n`` is what one request costs the process in user-space instructions. Hash
randomisation is off, the SQLite file is new for each process and its WAL checkpoints are off,
and the housekeeping sweep (once a minute, so more often in a slower run) runs only during the
warm-up, so a run on SQLite repeats its figures closely on a machine too noisy for wall-clock
ratios of 5%. Work done by a PostgreSQL server is not counted (it runs in another process),
but counts on PostgreSQL still vary with the machine's load (the hand-written view counted
2 378 311 and 2 248 560 instructions in two runs on a busy machine): compare them from runs on
a quiet machine only. ``python -m
benchmarks.instructions [--database-url URL]``; needs valgrind (Debian package ``valgrind``);
about a minute per process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .common import Headline, Report, Table, argument_parser, dialect_of

#: Each case and what it measures.
CASES = {
    "hand": "hand-written Flask view",
    "plain": "flask_flexactions record action (Messages URL)",
    "route": "the same action through its route",
    "table": 'FLEXACTIONS_AUDIT="table"',
    "idempotency": "Idempotency-Key header, a fresh key per request",
}
#: Each case's baseline and target, as in :mod:`.overhead`.
RATIOS = {
    "plain": ("hand", 1.05),
    "route": ("hand", 1.05),
    "table": ("plain", 1.30),
    "idempotency": ("plain", 1.35),
}
WARMUP = 100
_TOTAL = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


def _no_checkpoints(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _child(case: str, url: str, count: int) -> None:
    """In the process under valgrind: build the apps, warm up, send ``count`` requests."""
    from . import overhead
    from .common import WsgiCall
    from .models import db

    apps = overhead.build_apps(url)
    if dialect_of(url) == "sqlite":
        # A WAL checkpoint copies the log back into the database every thousand pages, and
        # lands in whichever request crosses the mark: counted per request, it moved the
        # hand-written view's figure by 2.5% from one run to the next.
        for app in apps.all():
            with app.app_context():
                engine = db.engine
                sa.event.listen(engine, "connect", _no_checkpoints)
                engine.dispose()
    for app in apps.all():
        # The sweep is due once a minute: a run slowed down by other work would count more
        # sweeps. The first one runs during the warm-up, which both counted runs share.
        app.extensions["flexactions"].housekeeping.interval = 10**9
    calls = {
        "hand": overhead.hand_call(apps.plain),
        "plain": WsgiCall(apps.twin, overhead.message()),
        "route": overhead.route_call(apps.twin),
        "table": WsgiCall(apps.table, overhead.message()),
        "idempotency": overhead.keyed_call(apps.twin),
    }
    call = calls[case]
    try:
        call.check()
        for _ in range(WARMUP + count):
            call()
    finally:
        apps.dispose()


def _instructions(case: str, url: str | None, count: int) -> int:
    """User-space instructions of one child process sending ``count`` measured requests."""
    with tempfile.TemporaryDirectory() as folder:
        database = url or f"sqlite:///{Path(folder) / 'bench.db'}"
        out = Path(folder) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--child",
            case,
            database,
            str(count),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(command, check=True, env=env, capture_output=True)
        found = _TOTAL.search(out.read_bytes())
        if found is None:
            raise RuntimeError(f"No instruction total in callgrind's output for {case}.")
        return int(found.group(1))


def run(url: str | None, count: int = 200) -> Report:
    """Count every case on ``url`` (None: a new SQLite file per process) and report."""
    dialect = "sqlite" if url is None else dialect_of(url)
    per_request = {
        case: (_instructions(case, url, count) - _instructions(case, url, 0)) / count
        for case in CASES
    }
    table = Table(["view", "instructions per request", "against its baseline"])
    headlines = []
    for case, label in CASES.items():
        baseline, target = RATIOS.get(case, (None, None))
        if baseline is None or target is None:
            table.add(label, f"{per_request[case]:,.0f}", "-")
            continue
        ratio = per_request[case] / per_request[baseline]
        table.add(label, f"{per_request[case]:,.0f}", f"{ratio:.3f} ({baseline})")
        headlines.append(Headline(f"{case} / {baseline}, instructions ({dialect})", ratio, target))
    note = (
        f"Database: {dialect}. Per request: (instructions with {count} measured requests - "
        f"instructions with none) / {count}, each after {WARMUP} warm-up requests, in a "
        "process of its own under valgrind's callgrind (PYTHONHASHSEED=0)."
    )
    return Report(
        title=f"Instructions per request ({dialect})",
        sections=[note, table.render()],
        headlines=headlines,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.instructions [--database-url URL]``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[2], int(argv[3]))
        return 0
    args = argument_parser(__doc__).parse_args(argv)
    report = run(args.database_url, 3 if args.quick else 200)
    print(report.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
