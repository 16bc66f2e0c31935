"""Overhead: a record action against a hand-written Flask view doing the same work.

Both load one row, add an integer param to it and commit, in the same process, through the
same Flask app; rounds alternate between them and the medians are compared. The same action is
measured beside them through its own route (``POST /flex/actions/bench_counters/bump`` with a
plain JSON body) rather than the Messages URL's envelope. Then the optional
features are measured side by side, each on the same action: the audit log (logging and table
sinks), an ``Idempotency-Key``, a per-model scope hook, ``lock=True``, a CORS call and a
ForeignKey param.
"""

from __future__ import annotations

import hmac
import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from werkzeug.wrappers import Response

from flask_flexactions import Caller, FlexActions
from flask_flexactions.run import forksafe

from .common import (
    TOKEN,
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
    median,
    microseconds,
    statements,
)
from .models import Counter, db

#: The plain record action against the hand-written view, on each database.
TARGET = 1.05
#: What a safety feature may add to the plain record action, as a ratio to it.
FEATURE_TARGETS = {"idempotency": 1.35, "table": 1.30, "keyed_scope": 1.10}
#: The variants that are apps of their own, measured against ``twin`` rather than ``plain``.
OWN_APPS = frozenset({"logging", "table", "scope", "keyed_scope", "unguarded"})
HAND_PATH = "/hand/bump"
ROUTE_PATH = "/flex/actions/bench_counters/bump"
ORIGIN = "https://app.jetadmin.io"
AUDIT_LOGGER = "flask_flexactions.audit"
#: Rows the scope hook lets through: every counter here.
SCOPE_LIMIT = 1000


def register_actions(flex: FlexActions) -> None:
    """``bump`` (the benchmarked action), ``bump_from`` (with a ForeignKey param) and
    ``bump_locked`` (``bump`` with ``lock=True``)."""

    @flex.action(
        Counter,
        for_instance=True,
        params=[{"name": "amount", "field": "IntegerField", "required": True}],
    )
    def bump(counter: Counter, params: dict[str, Any]) -> None:
        counter.value += params["amount"]

    @flex.action(
        Counter,
        for_instance=True,
        params=[
            {"name": "amount", "field": "IntegerField", "required": True},
            {"name": "source", "field": "ForeignKey", "params": {"related_model": Counter}},
        ],
    )
    def bump_from(counter: Counter, params: dict[str, Any]) -> None:
        counter.value += params["amount"] + params["source"].value

    @flex.action(
        Counter,
        for_instance=True,
        lock=True,
        params=[{"name": "amount", "field": "IntegerField", "required": True}],
    )
    def bump_locked(counter: Counter, params: dict[str, Any]) -> None:
        counter.value += params["amount"]


def scope_counters(statement: sa.Select[Any], caller: Caller) -> sa.Select[Any]:
    """A per-model scope hook of the usual shape: one more condition on the selection."""
    return statement.where(Counter.id <= SCOPE_LIMIT)


def hand_bump() -> Response | tuple[Response, int]:
    """What a developer would write by hand: parse, check the token, load, update, commit."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() not in ("token", "bearer") or not hmac.compare_digest(
        credential.encode(), TOKEN.encode()
    ):
        return jsonify(result=False, errors={"non_field_errors": ["Unauthorized"]}), 401
    body = request.get_json()
    params = body["params"]
    amount = params["params"]["amount"]
    if not isinstance(amount, int) or isinstance(amount, bool):
        return jsonify(result=False, errors={"amount": ["Not a valid integer."]})
    counter = db.session.get(Counter, params["id"])
    if counter is None:
        return jsonify(result=False, errors={"non_field_errors": ["No such record."]})
    counter.value += amount
    db.session.commit()
    return jsonify(result=True)


def _seed(app: Flask) -> None:
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.session.add_all([Counter(id=1, value=0), Counter(id=2, value=0)])
        db.session.commit()


def build(url: str, durable: bool = False) -> Flask:
    """The app with both the extension's action and the hand-written view, and two rows."""
    flex = FlexActions()
    register_actions(flex)
    app = make_app(url, flex, durable=durable, fresh=False)
    app.add_url_rule(HAND_PATH, "hand_bump", hand_bump, methods=["POST"])
    _seed(app)
    return app


@dataclass
class Apps:
    """The apps of one run, all on the same database: ``plain`` (defaults, with the
    hand-written view), ``logging`` and ``table`` (``FLEXACTIONS_AUDIT``), ``scoped`` (the same
    actions on an extension with a scope hook on ``Counter``), ``unguarded`` (``plain``
    whose engine has the fork guard's listeners removed), and ``twin``: ``plain`` again, an
    app of its own that serves only the plain action, the baseline of the variants that are
    apps of their own (``plain`` also serves the key, lock, CORS and ForeignKey variants,
    which makes its own plain requests slower in an interleaved run)."""

    plain: Flask
    logging: Flask
    table: Flask
    scoped: Flask
    keyed_scope: Flask
    unguarded: Flask
    twin: Flask

    def all(self) -> list[Flask]:
        """Every app, ``plain`` first."""
        return [
            self.plain,
            self.logging,
            self.table,
            self.scoped,
            self.keyed_scope,
            self.unguarded,
            self.twin,
        ]

    def dispose(self) -> None:
        """Close every app's connections and drop the tables (once, through ``plain``)."""
        for app in self.all()[1:]:
            dispose(app, drop=False)
        dispose(self.plain)


def build_apps(url: str, durable: bool = False) -> Apps:
    """Every app of a run; the tables (with the audit and idempotency tables) and two rows
    are created once every app is initialised."""
    flex = FlexActions()
    register_actions(flex)
    scoped_flex = FlexActions()
    register_actions(scoped_flex)
    scoped_flex.scope(Counter)(scope_counters)
    keyed_flex = FlexActions()
    register_actions(keyed_flex)
    keyed_flex.scope(Counter, cache_key=lambda caller: caller.roles)(scope_counters)
    apps = Apps(
        plain=make_app(url, flex, durable=durable, fresh=False),
        logging=make_app(url, flex, durable=durable, fresh=False, FLEXACTIONS_AUDIT="logging"),
        table=make_app(url, flex, durable=durable, fresh=False, FLEXACTIONS_AUDIT="table"),
        scoped=make_app(url, scoped_flex, durable=durable, fresh=False),
        keyed_scope=make_app(url, keyed_flex, durable=durable, fresh=False),
        unguarded=make_app(url, flex, durable=durable, fresh=False),
        twin=make_app(url, flex, durable=durable, fresh=False),
    )
    remove_fork_guard(apps.unguarded)
    apps.plain.add_url_rule(HAND_PATH, "hand_bump", hand_bump, methods=["POST"])
    _seed(apps.plain)
    return apps


def remove_fork_guard(app: Flask) -> None:
    """Take the fork guard's listeners off ``app``'s engine, to measure what they cost."""
    with app.app_context():
        engine = db.engine
    sa.event.remove(engine, "connect", forksafe._remember_process)
    sa.event.remove(engine, "checkout", forksafe._refuse_foreign_connection)


class _Discard(io.TextIOBase):
    """A text stream that drops what it is given (the log line is still formatted)."""

    def write(self, text: str) -> int:
        return len(text)


@contextmanager
def audit_logger() -> Iterator[None]:
    """The audit logger at INFO with a formatting ``StreamHandler`` whose stream discards the
    line: the cost a real handler has before its I/O."""
    logger = logging.getLogger(AUDIT_LOGGER)
    handler = logging.StreamHandler(_Discard())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def message(action: str = "bump", **extra: Any) -> dict[str, Any]:
    """The ``execute_action`` body that bumps counter 1 by one."""
    values = {"amount": 1, **extra}
    return {
        "name": "execute_action",
        "params": {"model": "bench_counters", "name": action, "id": 1, "params": values},
    }


def hand_call(app: Flask) -> WsgiCall:
    """The hand-written view's request (``app`` must be ``Apps.plain``, which routes it)."""
    return WsgiCall(app, message(), path=HAND_PATH)


def route_call(app: Flask) -> WsgiCall:
    """The record action through its route, with a plain JSON body."""
    return WsgiCall(app, {"id": 1, "values": {"amount": 1}}, path=ROUTE_PATH)


def keyed_call(app: Flask) -> WsgiCall:
    """The record action with a fresh Idempotency-Key on every request."""
    return WsgiCall(app, message(), unique_header="Idempotency-Key")


@dataclass(frozen=True)
class Sizes:
    """How long to measure."""

    rounds: int = 20
    per_round: int = 200
    warmup: int = 300


QUICK = Sizes(rounds=2, per_round=3, warmup=2)

#: The optional features: key, label, how the call differs from the plain one.
FEATURES = (
    ("logging", 'audit log, FLEXACTIONS_AUDIT="logging" (INFO, formatting handler)'),
    ("table", 'audit log, FLEXACTIONS_AUDIT="table" (one INSERT, in the run\'s transaction)'),
    ("idempotency", "Idempotency-Key header, a fresh key per request"),
    ("scope", "per-model scope hook (@flex.scope(Counter), one .where)"),
    ("keyed_scope", "the same hook declaring cache_key=lambda caller: caller.roles"),
    ("lock", "lock=True (SELECT ... FOR UPDATE; no-op on SQLite)"),
    ("cors", "browser call: allowed Origin, CORS headers"),
    ("fk", "ForeignKey param (loads one more row)"),
    ("unguarded", "without the fork guard (its pid check at each checkout removed)"),
)


def run(url: str, sizes: Sizes = Sizes(), durable: bool = False) -> Report:
    """Measure the overhead on ``url`` and report it."""
    apps = build_apps(url, durable)
    dialect = dialect_of(url)
    try:
        with audit_logger():
            return _measure(apps, dialect, sizes)
    finally:
        apps.dispose()


def _measure(apps: Apps, dialect: str, sizes: Sizes) -> Report:
    plain = apps.plain
    flex_call = WsgiCall(plain, message())
    hand = hand_call(plain)
    route = route_call(plain)
    calls = {
        "plain": flex_call,
        "logging": WsgiCall(apps.logging, message()),
        "table": WsgiCall(apps.table, message()),
        "idempotency": keyed_call(plain),
        "scope": WsgiCall(apps.scoped, message()),
        "keyed_scope": WsgiCall(apps.keyed_scope, message()),
        "lock": WsgiCall(plain, message("bump_locked")),
        "cors": WsgiCall(
            plain, message(), headers={"Authorization": f"Token {TOKEN}", "Origin": ORIGIN}
        ),
        "fk": WsgiCall(plain, message("bump_from", source=2)),
        "unguarded": WsgiCall(apps.unguarded, message()),
        "twin": WsgiCall(apps.twin, message()),
    }
    for call in (hand, route, *calls.values()):
        call.check()
    samples = interleave(
        {"flex": flex_call, "route": route, "hand": hand},
        sizes.rounds,
        sizes.per_round,
        sizes.warmup,
    )
    flex_time, hand_time = median(samples["flex"]), median(samples["hand"])
    route_time = median(samples["route"])
    ratio = flex_time / hand_time
    route_ratio = route_time / hand_time
    main = Table(["view", "median per request", "SQL statements", "ratio"])
    main.add("hand-written Flask view", microseconds(hand_time), statements(plain, hand), "1.00")
    main.add(
        "flask_flexactions record action",
        microseconds(flex_time),
        statements(plain, flex_call),
        f"{ratio:.2f}",
    )
    main.add(
        "the same action through its route (plain JSON body)",
        microseconds(route_time),
        statements(plain, route),
        f"{route_ratio:.2f}",
    )
    features = interleave(
        dict(calls), max(2, sizes.rounds // 2), sizes.per_round, sizes.warmup // 2
    )
    base = median(features["plain"])
    twin = median(features["twin"])
    base_sql = statements(plain, flex_call)
    extras = Table(
        [
            "variant of the record action",
            "median per request",
            "SQL statements",
            "extra time",
            "extra time / its baseline",
        ]
    )
    extras.add("plain (defaults: no audit, no key sent)", microseconds(base), base_sql, "-", "-")
    extras.add(
        "plain, on an app of its own (the baseline of the apps of their own, marked *)",
        microseconds(twin),
        base_sql,
        "-",
        "-",
    )
    costs: dict[str, float] = {}
    for key, label in FEATURES:
        call = calls[key]
        value = median(features[key])
        baseline = twin if key in OWN_APPS else base
        costs[key] = value / baseline
        extras.add(
            label + (" *" if key in OWN_APPS else ""),
            microseconds(value),
            statements(call.app, call),
            microseconds(value - baseline),
            f"{(value - baseline) / baseline:+.0%}",
        )
    note = (
        f"Database: {dialect}. {sizes.rounds} interleaved rounds of {sizes.per_round} "
        f"requests each after {sizes.warmup} warm-up requests; each request goes through "
        "the Flask app's WSGI callable (no test client), opens a session, loads counter 1, "
        "adds 1, commits and answers JSON. Extension overhead: "
        f"{microseconds(flex_time - hand_time)} per request through the Messages URL, "
        f"{microseconds(route_time - hand_time)} through the route. The three views alternate "
        "within each round. Optional features are off here: "
        "no audit log (FLEXACTIONS_AUDIT=None, the default) and no Idempotency-Key sent "
        "(idempotency is on by default but does nothing without a key)."
    )
    features_note = (
        f"Optional features, each alone on the same action, in one interleaved run of "
        f"{max(2, sizes.rounds // 2)} rounds of {sizes.per_round} requests (its own medians; "
        "the plain row is this run's). The audit and scope variants are apps of their own on "
        "the same database and extension settings. The logging sink writes to a logger at INFO "
        "whose StreamHandler formats each line and writes it to a stream that discards it "
        "(the cost before any real I/O). Variants marked * are apps of their own and are "
        "compared with the plain action on an app of its own; the others run on the plain "
        "app and are compared with its plain row. The table sink writes a committed run's record "
        "inside the run's own transaction (one INSERT, no commit of its own); the "
        "Idempotency-Key is reserved and its answer stored inside the action's own "
        "transaction (two statements). The row without the fork guard "
        "measures the guard: its negative extra time is what the guard costs."
    )
    return Report(
        title=f"Overhead against a hand-written view ({dialect})",
        sections=[note, main.render(), features_note, extras.render()],
        headlines=[
            Headline(f"overhead ratio ({dialect})", ratio, TARGET),
            Headline(f"route overhead ratio ({dialect})", route_ratio, TARGET),
            *(
                Headline(f"{key} / its baseline ({dialect})", costs[key], target)
                for key, target in FEATURE_TARGETS.items()
            ),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.overhead [--database-url URL] [--quick]``."""
    args = argument_parser(__doc__).parse_args(argv)
    url = args.database_url or default_database_url()
    report = run(url, QUICK if args.quick else Sizes(), args.durable)
    print(report.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
