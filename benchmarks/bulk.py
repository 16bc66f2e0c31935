"""Bulk scaling: a bulk action over 10 to 50 000 ids against the bare SQLAlchemy load.

For each size the table holds exactly that many rows. The ``ids`` form sends every id; the
``inverseIds`` form selects all rows except one. The bare baseline loads the same rows with
``select(Item).where(Item.id.in_(ids))`` (or ``Item.id != excluded``) in a fresh session.
At 1 000 ids, the default all-or-nothing run is also compared with ``atomic=False`` (each
record in a SAVEPOINT, an outcome per id), for a handler that changes nothing and one that
flips a column of each row.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_flexactions import FlexActions

from .common import (
    Headline,
    Report,
    Table,
    WsgiCall,
    argument_parser,
    default_database_url,
    dialect_of,
    dispose,
    interleave,
    make_app,
    mebibytes,
    median,
    microseconds,
    milliseconds,
    peak_memory,
    statements,
)
from .models import Item, db

TIME_TARGET = 1.5
MEMORY_TARGET = 1.25
#: Ids per statement of the bare baseline: below SQLite's limit of 32 766 bound parameters.
BARE_CHUNK = 30_000
CHUNK_SIZE = 1000


#: The largest selection sent (FLEXACTIONS_MAX_IDS is raised to it; its default is 10 000).
MAX_IDS = 50_000


def _touch(items: list[Item], params: dict[str, Any]) -> str:
    return f"{len(items)} items"


def _flag(items: list[Item], params: dict[str, Any]) -> str:
    for item in items:
        item.flagged = not item.flagged
    return f"{len(items)} items"


def build(url: str, durable: bool = False) -> Flask:
    """An app with the bulk action ``touch``, which receives the rows and changes nothing,
    ``flag``, which flips ``flagged`` on each, and both again with ``atomic=False``
    (``touch_each``, ``flag_each``)."""
    flex = FlexActions()
    for handler, name in ((_touch, "touch"), (_flag, "flag")):
        flex.register_action(handler, Item, name=name, bulk=True)
        flex.register_action(handler, Item, name=f"{name}_each", bulk=True, atomic=False)
    return make_app(
        url, flex, durable=durable, FLEXACTIONS_MAX_BODY=8 * 2**20, FLEXACTIONS_MAX_IDS=MAX_IDS
    )


def fill(app: Flask, count: int) -> None:
    """Replace the rows of ``bench_items`` with ``count`` rows, ids 1 to ``count``."""
    with app.app_context():
        db.session.execute(sa.delete(Item))
        rows = [{"id": i, "name": f"item {i}", "flagged": False} for i in range(1, count + 1)]
        for start in range(0, count, 10_000):
            db.session.execute(sa.insert(Item), rows[start : start + 10_000])
        db.session.commit()


def message(ids: Sequence[int], inverse: bool = False, name: str = "touch") -> dict[str, Any]:
    """The ``execute_action`` body of ``touch`` (or of the action ``name``)."""
    params: dict[str, Any] = {"model": "bench_items", "name": name, "ids": list(ids)}
    if inverse:
        params["inverseIds"] = True
    return {"name": "execute_action", "params": params}


def bare_load(
    app: Flask, ids: Sequence[int] | None, excluded: int | None = None
) -> Callable[[], int]:
    """The baseline: load the rows with plain SQLAlchemy in a fresh session."""

    def load() -> int:
        with app.app_context():
            if ids is not None:
                count = 0
                for start in range(0, len(ids), BARE_CHUNK):
                    chunk = ids[start : start + BARE_CHUNK]
                    count += len(
                        db.session.scalars(sa.select(Item).where(Item.id.in_(chunk))).all()
                    )
            else:
                statement = sa.select(Item).where(Item.id != excluded).order_by(Item.id)
                count = len(db.session.scalars(statement).all())
            db.session.remove()
            return count

    return load


@dataclass(frozen=True)
class Sizes:
    """The numbers of ids, and how many rows to time per sample."""

    counts: tuple[int, ...] = (10, 100, 1000, 10_000, 50_000)
    #: Rows loaded per timed sample (several requests for small sizes).
    rows_per_round: int = 10_000
    rounds: int = 5
    rounds_largest: int = 3
    #: The size at which ``atomic=False`` is compared with the default.
    per_record_ids: int = 1000


QUICK = Sizes(counts=(10, 100), rows_per_round=100, rounds=1, rounds_largest=1, per_record_ids=10)


def run(url: str, sizes: Sizes = Sizes(), durable: bool = False) -> Report:
    """Measure bulk loading on ``url`` and report it."""
    dialect = dialect_of(url)
    app = build(url, durable)
    table = Table(
        [
            "ids",
            "form",
            "flex time",
            "flex per id",
            "bare per id",
            "ratio",
            "flex SQL",
            "bare SQL",
            "flex peak mem",
            "bare peak mem",
            "flex mem per id",
        ]
    )
    per_record = Table(
        [
            "action",
            "run",
            "time",
            "per id",
            "SQL statements",
            "ratio to atomic",
        ]
    )
    ratios: dict[int, float] = {}
    flex_statements: dict[int, int] = {}
    memory_per_id: dict[int, float] = {}
    try:
        for count in sizes.counts:
            fill(app, count)
            ids = list(range(1, count + 1))
            per_round = max(1, min(50, sizes.rows_per_round // count))
            rounds = sizes.rounds_largest if count >= 50_000 else sizes.rounds
            for form in ("ids", "inverseIds"):
                inverse = form == "inverseIds"
                flex_call = WsgiCall(app, message([1] if inverse else ids, inverse))
                bare_call = bare_load(app, None if inverse else ids, 1 if inverse else None)
                expected = count - 1 if inverse else count
                flex_call.check(f'"message":"{expected} items"'.encode())
                if bare_call() != expected:
                    raise RuntimeError("The bare load did not find every row.")
                samples = interleave(
                    {"flex": flex_call, "bare": bare_call}, rounds, per_round, warmup=1
                )
                flex_time, bare_time = median(samples["flex"]), median(samples["bare"])
                rows = max(expected, 1)
                flex_sql = statements(app, flex_call)
                flex_memory = peak_memory(flex_call)
                table.add(
                    f"{count:,}",
                    form,
                    milliseconds(flex_time),
                    microseconds(flex_time / rows),
                    microseconds(bare_time / rows),
                    f"{flex_time / bare_time:.2f}",
                    flex_sql,
                    statements(app, bare_call),
                    mebibytes(flex_memory),
                    mebibytes(peak_memory(bare_call)),
                    f"{flex_memory / rows:.0f} B",
                )
                if not inverse:
                    ratios[count] = flex_time / bare_time
                    flex_statements[count] = flex_sql
                    memory_per_id[count] = flex_memory / rows
            if count == sizes.per_record_ids:
                compare_per_record(app, ids, sizes.rounds, per_round, per_record)
    finally:
        dispose(app)
    note = (
        f"Database: {dialect}. Median of {sizes.rounds} interleaved rounds "
        f"({sizes.rounds_largest} at 50,000 ids); ids are sent as a JSON array and loaded in "
        f"chunks of FLEXACTIONS_ID_CHUNK_SIZE={CHUNK_SIZE}; the bare load uses one statement "
        f"per {BARE_CHUNK:,} ids (SQLite's parameter limit). Flex time is the whole request: "
        "JSON parsing, id checks, loading, the handler and the commit. Peak memory is "
        "tracemalloc's peak during one request or load."
    )
    headlines = []
    small = [flex_statements[c] for c in flex_statements if c <= CHUNK_SIZE]
    headlines.append(
        Headline(
            f"bulk SQL statements from 10 to {CHUNK_SIZE} ids, max - min ({dialect})",
            float(max(small) - min(small)) if small else 0.0,
            0.0,
            "==",
        )
    )
    key = 10_000 if 10_000 in ratios else max(ratios)
    headlines.append(
        Headline(
            f"bulk time per id at {key:,} ids, flex/bare ({dialect})", ratios[key], TIME_TARGET
        )
    )
    large, base = max(memory_per_id), (10_000 if 10_000 in memory_per_id else min(memory_per_id))
    headlines.append(
        Headline(
            f"bulk memory per id at {large:,} / at {base:,} ids ({dialect})",
            memory_per_id[large] / memory_per_id[base],
            MEMORY_TARGET,
        )
    )
    per_record_note = (
        f"atomic=False at {sizes.per_record_ids:,} ids against the default all-or-nothing run "
        f"of the same handler, interleaved ({sizes.rounds} rounds). touch changes nothing; "
        "flag flips flagged on each row (the default run flushes them in one executemany "
        "UPDATE at the commit; atomic=False flushes each row in its SAVEPOINT). atomic=False "
        "also answers with an outcome per id. Its statements are the load, a BEGIN on SQLite, and "
        "a SAVEPOINT and a RELEASE per record (plus its UPDATE for flag)."
    )
    return Report(
        title=f"Bulk scaling ({dialect})",
        sections=[note, table.render(), per_record_note, per_record.render()],
        headlines=headlines,
    )


def compare_per_record(
    app: Flask, ids: Sequence[int], rounds: int, per_round: int, table: Table
) -> None:
    """Add to ``table`` the default and the ``atomic=False`` runs of ``touch`` and ``flag``."""
    count = len(ids)
    calls = {
        name: WsgiCall(app, message(ids, name=name))
        for name in ("touch", "touch_each", "flag", "flag_each")
    }
    for name, call in calls.items():
        expected = f"{count} of {count} records done" if name.endswith("_each") else "items"
        call.check(expected.encode())
    samples = interleave(dict(calls), rounds, per_round, warmup=1)
    for name in ("touch", "flag"):
        atomic = median(samples[name])
        for key, run_kind in ((name, "atomic (default)"), (f"{name}_each", "atomic=False")):
            value = median(samples[key])
            table.add(
                name,
                run_kind,
                milliseconds(value),
                microseconds(value / count),
                statements(app, calls[key]),
                f"{value / atomic:.2f}",
            )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.bulk [--database-url URL] [--quick]``."""
    args = argument_parser(__doc__).parse_args(argv)
    url = args.database_url or default_database_url()
    print(run(url, QUICK if args.quick else Sizes(), args.durable).render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
