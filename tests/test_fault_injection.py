"""Fault injection: SQL statement k of a 50-row bulk run fails, for every k.

The default (atomic) policy must leave the database exactly as it was; ``atomic=False`` must
commit exactly the records it reports as done. Either way no connection or transaction may be
left behind. Each run counts the statements the engine sends (SELECT, UPDATE, INSERT,
SAVEPOINT, RELEASE, ROLLBACK TO SAVEPOINT, and on SQLite the BEGIN) and fails the k-th.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from flask_flexactions import ActionError, FlexActions
from tests.conftest import AUTH, Messages
from tests.models import Tag, User, db

ROWS = 50
#: Records the per-record handler refuses after flushing its writes, and before flushing them:
#: their ROLLBACK TO SAVEPOINT statements are then part of a clean run and get failed too.
REFUSED_FLUSHED = frozenset({7, 21, 35})
REFUSED_PENDING = frozenset({14, 28, 42})
REFUSED = REFUSED_FLUSHED | REFUSED_PENDING
#: A statement that fails in the database itself (on PostgreSQL it aborts the transaction).
BROKEN_SQL = "SELECT * FROM flexactions_fault_no_such_table"
FIGURES = Path(__file__).resolve().parents[1] / "test-artifacts" / "safety-figures.json"

Snapshot = tuple[list[tuple[int, str, bool]], list[tuple[str, str]]]


class InjectedFault(Exception):
    """The failure these tests inject; nothing else raises it."""


def record_figures(app: Flask, section: str, figures: dict[str, Any]) -> None:
    """Merge ``figures`` into the safety figures file, under the database's dialect name."""
    dialect = dialect_name(app)
    FIGURES.parent.mkdir(exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data.setdefault(dialect, {})[section] = figures
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def dialect_name(app: Flask) -> str:
    return str(app.extensions["flexactions"].db.engine.dialect.name)


def engine_of(app: Flask) -> sa.Engine:
    with app.app_context():
        return db.engine  # type: ignore[no-any-return]


def idle_in_transaction(app: Flask) -> int:
    """Sessions of the test database idle in a transaction, seen from a connection of its own
    (PostgreSQL only; 0 elsewhere)."""
    engine = engine_of(app)
    if engine.dialect.name != "postgresql":
        return 0
    observer = sa.create_engine(engine.url, poolclass=NullPool)
    try:
        with observer.connect() as connection:
            return int(
                connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
    finally:
        observer.dispose()


@dataclass
class Fault:
    """A ``before_cursor_execute`` listener failing ``span`` statements from statement ``at``
    (1-based); ``span=None`` fails every later statement and the COMMIT too, as if the database
    had gone away. The ``raise`` kind raises before the driver sees the statement; ``sql`` makes
    the driver run a broken statement on the same cursor, a real database error."""

    at: int
    kind: str = "raise"
    span: int | None = 1
    count: int = 0
    failed: list[str] = field(default_factory=list)

    def __call__(
        self,
        connection: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        self.count += 1
        last = None if self.span is None else self.at + self.span - 1
        if self.at <= self.count and (last is None or self.count <= last):
            self.failed.append(statement)
            if self.kind == "sql":
                cursor.execute(BROKEN_SQL)
            raise InjectedFault(f"statement {self.count} fails: {statement[:40]}")

    def commit(self, connection: Any) -> None:
        """COMMIT is no cursor statement; it fails through the ``commit`` event."""
        if self.span is None and self.failed:
            raise InjectedFault("COMMIT fails")

    @property
    def plan(self) -> str:
        span = "all-after" if self.span is None else f"span{self.span}"
        return f"{self.kind}-{span}"


@contextmanager
def armed(engine: sa.Engine, fault: Fault) -> Iterator[Fault]:
    """Listen with ``fault`` only while the block runs (one request); the app's logger is
    silenced meanwhile, as hundreds of injected tracebacks only cost time."""
    logger = logging.getLogger("tests.conftest")
    disabled = logger.disabled
    sa.event.listen(engine, "before_cursor_execute", fault)
    sa.event.listen(engine, "commit", fault.commit)
    logger.disabled = True
    try:
        yield fault
    finally:
        logger.disabled = disabled
        sa.event.remove(engine, "commit", fault.commit)
        sa.event.remove(engine, "before_cursor_execute", fault)


def seed(app: Flask) -> Snapshot:
    with app.app_context():
        db.session.add_all(User(id=i, name=f"user{i}") for i in range(1, ROWS + 1))
        db.session.commit()
    return snapshot(app)


def snapshot(app: Flask) -> Snapshot:
    """Both tables as a brand-new session sees them."""
    with app.app_context(), Session(db.engine) as session:
        users = sorted((u.id, u.name, u.is_blocked) for u in session.scalars(sa.select(User)))
        tags = sorted((t.code, t.label) for t in session.scalars(sa.select(Tag)))
    return users, tags


def restore(app: Flask) -> None:
    """Put the seed data back after a run that committed something."""
    with app.app_context(), Session(db.engine) as session:
        session.execute(sa.delete(Tag))
        session.execute(
            sa.update(User),
            [{"id": i, "name": f"user{i}", "is_blocked": False} for i in range(1, ROWS + 1)],
        )
        session.commit()


def expected(done: set[int]) -> Snapshot:
    """The database after exactly the records ``done`` were committed."""
    users = [
        (i, f"done{i}", True) if i in done else (i, f"user{i}", False) for i in range(1, ROWS + 1)
    ]
    return users, sorted((f"t{i}", f"done{i}") for i in done)


def touch(row: User) -> None:
    """One record's work: an UPDATE and an INSERT, flushed by the handler itself."""
    row.name = f"done{row.id}"
    row.is_blocked = True
    db.session.add(Tag(code=f"t{row.id}", label=row.name))
    db.session.flush()


def register(flex: FlexActions, atomic: bool) -> None:
    if atomic:

        @flex.action(User, name="touch_all", bulk=True)
        def touch_all(rows: list[User], params: dict[str, Any]) -> str:
            for row in rows:
                touch(row)
            return "all done"

    else:

        @flex.action(User, name="touch_all", bulk=True, atomic=False)
        def touch_each(rows: list[User], params: dict[str, Any]) -> str:
            (row,) = rows
            if row.id in REFUSED_PENDING:
                row.name = "refused with pending changes"
                raise ActionError("Refused before flushing.")
            touch(row)
            if row.id in REFUSED_FLUSHED:
                raise ActionError("Refused after flushing.")
            return f"done {row.id}"


def run(app: Flask, messages: Messages, fault: Fault) -> tuple[int, Any]:
    with armed(engine_of(app), fault):
        response = messages.execute("touch_all", "users", ids=list(range(1, ROWS + 1)))
    return response.status_code, response.get_json()


def succeeded(body: dict[str, Any]) -> set[int] | str:
    """The ids reported as done, or what is wrong with the ``records`` key."""
    records = body.get("records")
    if not isinstance(records, list):
        return f"no records list in {body}"
    if [r.get("id") for r in records] != list(range(1, ROWS + 1)):
        return f"records do not list every id once, in order: {records}"
    done = {r["id"] for r in records if r.get("result") is True}
    if body.get("result") is not (len(done) == ROWS):
        return f"result {body.get('result')} disagrees with {len(done)} records done"
    return done


@dataclass
class Tally:
    """What a sweep of runs saw; ``violations`` lists every broken guarantee."""

    runs: int = 0
    answered_500: int = 0
    answered_false: int = 0
    leaked_connections: int = 0
    violating_runs: int = 0
    violations: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "answered_500": self.answered_500,
            "answered_result_false": self.answered_false,
            "runs_violating_a_guarantee": self.violating_runs,
            "leaked_connections": self.leaked_connections,
        }


def sweep(
    app: Flask,
    messages: Messages,
    atomic: bool,
    before: Snapshot,
    plans: list[tuple[str, int | None]],
    statements: int,
    clean_done: set[int],
    tally: Tally,
) -> None:
    """Fail statement k for k in 1..max(50, statements), under each plan."""
    engine = engine_of(app)
    for kind, span in plans:
        # Single faults fail every k. Multi-statement faults start at every third k: 3 is
        # coprime with a record's 4 statements, so they still start at each kind of statement,
        # at a third of the cost.
        for k in range(1, max(ROWS, statements) + 1, 1 if span == 1 else 3):
            fault = Fault(at=k, kind=kind, span=span)
            status, body = run(app, messages, fault)
            seen = len(tally.violations)
            where = f"{fault.plan} k={k} ({' '.join(fault.failed[:1])[:24]})"
            tally.runs += 1
            if engine.pool.checkedout() != 0:
                tally.leaked_connections += 1
                tally.violations.append(f"{where}: {engine.pool.checkedout()} checked out")
            if k <= statements and not fault.failed:
                tally.violations.append(f"{where}: the fault never fired")
            after = snapshot(app)
            if status == 500:
                tally.answered_500 += 1
                if after != before:
                    tally.violations.append(f"{where}: 500 but the database changed")
            elif status == 200 and atomic:
                tally.answered_false += body.get("result") is False
                if body.get("result") is not False and fault.failed:
                    tally.violations.append(f"{where}: result true despite the fault")
                if after != (before if fault.failed else expected(clean_done)):
                    tally.violations.append(f"{where}: {body} but the database changed")
            elif status == 200:
                done = succeeded(body)
                if isinstance(done, str):
                    tally.violations.append(f"{where}: {done}")
                    done = set()
                else:
                    tally.answered_false += body["result"] is False
                    if after != expected(done):
                        tally.violations.append(f"{where}: committed rows differ from {done}")
                    # One failed statement costs at most the one record it belonged to.
                    lost = clean_done - done
                    if span == 1 and (not done <= clean_done or len(lost) > 1):
                        tally.violations.append(f"{where}: done {sorted(lost)} lost")
            else:
                tally.violations.append(f"{where}: unexpected status {status}: {body}")
            if after != before:
                restore(app)
            if len(tally.violations) > seen:
                tally.violating_runs += 1


def clean_run(app: Flask, messages: Messages) -> tuple[int, set[int]]:
    """Statements of a run without faults, and the ids it commits; the data is restored."""
    counter = Fault(at=0)
    status, body = run(app, messages, counter)
    assert status == 200, body
    if "records" in body:
        done = succeeded(body)
        assert done == set(range(1, ROWS + 1)) - REFUSED, done
    else:
        assert body == {"result": True, "message": "all done"}
        done = set(range(1, ROWS + 1))
    assert snapshot(app) == expected(done)
    restore(app)
    return counter.count, done


def check_no_leaks(app: Flask) -> dict[str, int]:
    """Connections still checked out of the pool, and (PostgreSQL) sessions of the test
    database idle in a transaction, with no request running."""
    return {
        "pool_checked_out_after": engine_of(app).pool.checkedout(),
        "idle_in_transaction_after": idle_in_transaction(app),
    }


ON_POSTGRESQL = os.environ.get("FLEXACTIONS_TEST_DATABASE_URL", "").startswith("postgresql")


def sweep_and_record(
    app: Flask,
    flex: FlexActions,
    messages: Messages,
    atomic: bool,
    plans: list[tuple[str, int | None]],
    section: str,
) -> tuple[Tally, dict[str, int]]:
    """Seed, sweep k under ``plans``, write the figures; the tally and the leak check."""
    before = seed(app)
    register(flex, atomic)
    statements, clean_done = clean_run(app, messages)
    assert statements > 2 * ROWS  # an UPDATE and an INSERT per row, at least
    tally = Tally()
    sweep(app, messages, atomic, before, plans, statements, clean_done, tally)
    leaks = check_no_leaks(app)
    record_figures(
        app,
        section,
        {
            **tally.figures(),
            **leaks,
            "statements_in_clean_run": statements,
            "plans": [Fault(0, kind, span).plan for kind, span in plans],
        },
    )
    if not tally.violations:
        assert snapshot(app) == before
    return tally, leaks


NO_LEAKS = {"pool_checked_out_after": 0, "idle_in_transaction_after": 0}


@pytest.mark.parametrize(
    ("atomic", "plans"),
    [
        # Atomic runs end in the driver's own rollback, so a real database error at k and the
        # outage plan add nothing new here: test_failing_commit_keeps_nothing covers COMMIT.
        (True, [("raise", 1), ("sql", 1)]),
        # Every k fails once; and k starts an outage: all later statements (the ROLLBACK TO
        # SAVEPOINTs included) and the COMMIT fail too.
        (False, [("raise", 1), ("raise", None)]),
    ],
    ids=["atomic", "per-record"],
)
def test_failing_statement_k_never_half_applies(
    app: Flask,
    flex: FlexActions,
    messages: Messages,
    atomic: bool,
    plans: list[tuple[str, int | None]],
) -> None:
    section = f"fault_injection_{'atomic' if atomic else 'per_record'}"
    tally, leaks = sweep_and_record(app, flex, messages, atomic, plans, section)
    assert tally.violations == []
    assert leaks == NO_LEAKS


def test_database_error_at_statement_k_per_record(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    """Statement k fails in the database itself. On PostgreSQL that aborts the transaction, and
    PostgreSQL answers a later COMMIT with a silent ROLLBACK: a failed SAVEPOINT must end the
    run (500), never be blamed on one record while the others are reported done."""
    section = "fault_injection_per_record_database_error"
    tally, leaks = sweep_and_record(app, flex, messages, False, [("sql", 1)], section)
    assert tally.violations == []
    assert leaks == NO_LEAKS


def test_failing_statement_and_its_rollback_to_savepoint(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    """Statements k and k+1 fail: for a record whose INSERT fails, statement k+1 is the ROLLBACK
    TO SAVEPOINT that SQLAlchemy emits inside the failed flush; the record's UPDATE must not
    reach the commit."""
    section = "fault_injection_per_record_statement_and_rollback"
    tally, leaks = sweep_and_record(app, flex, messages, False, [("raise", 2)], section)
    assert tally.violations == []
    assert leaks == NO_LEAKS


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "per-record"])
def test_failing_commit_keeps_nothing(
    app: Flask, flex: FlexActions, messages: Messages, atomic: bool
) -> None:
    """COMMIT is no cursor statement: fail it through the engine's ``commit`` event."""
    before = seed(app)
    register(flex, atomic)
    engine = engine_of(app)

    def fail_commit(connection: Any) -> None:
        raise InjectedFault("COMMIT fails")

    sa.event.listen(engine, "commit", fail_commit)
    try:
        response = messages.execute("touch_all", "users", ids=list(range(1, ROWS + 1)))
    finally:
        sa.event.remove(engine, "commit", fail_commit)
    assert response.status_code == 500
    assert snapshot(app) == before
    assert engine.pool.checkedout() == 0
    assert idle_in_transaction(app) == 0


# Idempotency-Key races: what another request can do between reserving a key and reading it


KEY = {"Idempotency-Key": "race-3f6c1b7e"}


@pytest.fixture
def keyed(app: Flask, flex: FlexActions) -> list[str]:
    """A common action ``stamp`` that records its calls and writes a row."""
    calls: list[str] = []

    @flex.action(params=[{"name": "label", "field": "CharField"}])
    def stamp(params: dict[str, Any]) -> str:
        calls.append(params["label"])
        db.session.add(Tag(code=f"stamp{len(calls)}", label=params["label"]))
        return f"stamped {params['label']}"

    return calls


def send_keyed(messages: Messages, label: str = "a") -> Any:
    body = {"name": "execute_action", "params": {"name": "stamp", "params": {"label": label}}}
    return messages.post(body, headers={**AUTH, **KEY})


def key_rows(app: Flask) -> list[tuple[str, int | None]]:
    with app.app_context(), Session(db.engine) as session:
        table = app.extensions["flexactions"].idempotency.table
        return [(row.state, row.status) for row in session.execute(sa.select(table))]


def conflict_on(
    app: Flask, monkeypatch: pytest.MonkeyPatch, conflicts: int
) -> list[tuple[str, str]]:
    """Make the first ``conflicts`` inserts of a key's row fail as a unique-key conflict does
    when another request holds the key, with no row left to read afterwards (it was swept as
    expired, or its run rolled back meanwhile); later inserts go through."""
    store = app.extensions["flexactions"].idempotency
    real_insert = store._insert
    inserts: list[tuple[str, str]] = []

    def insert(session: Any, row_id: str, digest: str, **values: Any) -> bool:
        inserts.append((row_id, digest))
        if len(inserts) <= conflicts:
            raise sa.exc.IntegrityError("INSERT INTO flexactions_idempotency", {}, InjectedFault())
        return bool(real_insert(session, row_id, digest, **values))

    monkeypatch.setattr(store, "_insert", insert)
    return inserts


@pytest.mark.parametrize("conflicts", [1, 2])
def test_a_key_whose_conflicting_row_vanished_is_reserved_again(
    app: Flask,
    messages: Messages,
    keyed: list[str],
    monkeypatch: pytest.MonkeyPatch,
    conflicts: int,
) -> None:
    inserts = conflict_on(app, monkeypatch, conflicts)
    first = send_keyed(messages)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json() == {"result": True, "message": "stamped a"}
    assert len(inserts) == conflicts + 1 and len(set(inserts)) == 1
    assert keyed == ["a"] and key_rows(app) == [("done", 200)]
    again = send_keyed(messages)
    assert again.data == first.data and again.headers["Idempotent-Replayed"] == "true"
    assert keyed == ["a"]
    assert engine_of(app).pool.checkedout() == 0


def test_a_key_that_keeps_conflicting_is_409_and_nothing_runs(
    app: Flask, messages: Messages, keyed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three conflicts in a row, each row gone before it could be read: give up with a 409
    the client may retry, rather than loop or run without the key."""
    inserts = conflict_on(app, monkeypatch, 3)
    response = send_keyed(messages)
    assert response.status_code == 409
    assert response.get_json()["errors"]["non_field_errors"] == [
        "Could not reserve the Idempotency-Key; retry."
    ]
    assert len(inserts) == 3
    assert keyed == [] and key_rows(app) == [] and snapshot(app) == ([], [])
    assert engine_of(app).pool.checkedout() == 0
    assert idle_in_transaction(app) == 0
    monkeypatch.undo()
    assert send_keyed(messages).get_json() == {"result": True, "message": "stamped a"}
    assert keyed == ["a"]


def test_a_key_held_by_an_open_run_is_409_and_nothing_runs(
    app: Flask, messages: Messages, keyed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's advisory lock refuses the insert while another open transaction holds the
    key (``_insert`` returns False); forced here on any database."""
    store = app.extensions["flexactions"].idempotency
    monkeypatch.setattr(store, "_insert", lambda session, row_id, digest, **values: False)
    response = send_keyed(messages)
    assert response.status_code == 409
    assert "still running" in response.get_json()["errors"]["non_field_errors"][0]
    assert keyed == [] and key_rows(app) == [] and snapshot(app) == ([], [])
    assert engine_of(app).pool.checkedout() == 0


def test_an_expired_key_renewed_meanwhile_is_not_deleted(
    app: Flask, messages: Messages, keyed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repeat reads the key's row as expired; before it deletes the row, the sweep and
    another request have replaced it with a fresh answer. Only a row that is still expired
    may go: the fresh answer is replayed, and nothing runs twice."""
    assert send_keyed(messages).get_json() == {"result": True, "message": "stamped a"}
    store = app.extensions["flexactions"].idempotency
    table = store.table
    engine = engine_of(app)
    with engine.begin() as connection:
        connection.execute(table.update().values(expires_at=dt.datetime(2000, 1, 1)))
    real_forget = store._forget_expired
    renewed: list[str] = []

    def renewed_meanwhile(row_id: str) -> None:
        with engine.begin() as connection:
            connection.execute(table.update().values(expires_at=dt.datetime(2999, 1, 1)))
        renewed.append(row_id)
        real_forget(row_id)

    monkeypatch.setattr(store, "_forget_expired", renewed_meanwhile)
    again = send_keyed(messages)
    assert len(renewed) == 1
    assert again.get_json() == {"result": True, "message": "stamped a"}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert keyed == ["a"] and key_rows(app) == [("done", 200)]
