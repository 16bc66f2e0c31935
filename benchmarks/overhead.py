"""Overhead: a record action against a hand-written Flask view doing the same work.

Both load one row, add an integer param to it and commit, in the same process, through the
same Flask app; rounds alternate between them and the medians are compared.
"""

from __future__ import annotations

import hmac
import sys
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.wrappers import Response

from flask_flexactions import FlexActions

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

TARGET = 1.10
HAND_PATH = "/hand/bump"
ORIGIN = "https://app.jetadmin.io"


def register_actions(flex: FlexActions) -> None:
    """``bump`` (the benchmarked action) and ``bump_from`` (with a ForeignKey param)."""

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


def build(url: str, durable: bool = False) -> Flask:
    """The app with both the extension's action and the hand-written view, and two rows."""
    flex = FlexActions()
    register_actions(flex)
    app = make_app(url, flex, durable=durable)
    app.add_url_rule(HAND_PATH, "hand_bump", hand_bump, methods=["POST"])
    with app.app_context():
        db.session.add_all([Counter(id=1, value=0), Counter(id=2, value=0)])
        db.session.commit()
    return app


def message(action: str = "bump", **extra: Any) -> dict[str, Any]:
    """The ``execute_action`` body that bumps counter 1 by one."""
    values = {"amount": 1, **extra}
    return {
        "name": "execute_action",
        "params": {"model": "bench_counters", "name": action, "id": 1, "params": values},
    }


@dataclass(frozen=True)
class Sizes:
    """How long to measure."""

    rounds: int = 20
    per_round: int = 200
    warmup: int = 300


QUICK = Sizes(rounds=2, per_round=3, warmup=2)


def run(url: str, sizes: Sizes = Sizes(), durable: bool = False) -> Report:
    """Measure the overhead on ``url`` and report it."""
    app = build(url, durable)
    dialect = dialect_of(url)
    try:
        flex_call = WsgiCall(app, message())
        hand_call = WsgiCall(app, message(), path=HAND_PATH)
        cors_call = WsgiCall(
            app, message(), headers={"Authorization": f"Token {TOKEN}", "Origin": ORIGIN}
        )
        fk_call = WsgiCall(app, message("bump_from", source=2))
        for call in (flex_call, hand_call, cors_call, fk_call):
            call.check()
        samples = interleave(
            {"flex": flex_call, "hand": hand_call},
            sizes.rounds,
            sizes.per_round,
            sizes.warmup,
        )
        flex_time, hand_time = median(samples["flex"]), median(samples["hand"])
        ratio = flex_time / hand_time
        main = Table(["view", "median per request", "SQL statements", "ratio"])
        main.add(
            "hand-written Flask view", microseconds(hand_time), statements(app, hand_call), "1.00"
        )
        main.add(
            "flask_flexactions record action",
            microseconds(flex_time),
            statements(app, flex_call),
            f"{ratio:.2f}",
        )
        features = interleave(
            {"base": flex_call, "cors": cors_call, "fk": fk_call},
            max(2, sizes.rounds // 2),
            sizes.per_round,
            sizes.warmup // 2,
        )
        base = median(features["base"])
        extras = Table(
            ["variant of the record action", "median per request", "SQL statements", "extra"]
        )
        extras.add("plain (as above)", microseconds(base), statements(app, flex_call), "-")
        for name, label, call in (
            ("cors", "browser call: allowed Origin, CORS headers", cors_call),
            ("fk", "plus a ForeignKey param (loads one more row)", fk_call),
        ):
            value = median(features[name])
            extras.add(
                label, microseconds(value), statements(app, call), microseconds(value - base)
            )
        note = (
            f"Database: {dialect}. {sizes.rounds} interleaved rounds of {sizes.per_round} "
            f"requests each after {sizes.warmup} warm-up requests; each request goes through "
            "the Flask app's WSGI callable (no test client), opens a session, loads counter 1, "
            "adds 1, commits and answers JSON. Extension overhead: "
            f"{microseconds(flex_time - hand_time)} per request."
        )
        features_note = (
            "Optional features: this version has no audit log or idempotency store, so none is "
            "switched off; the variants below measure the optional work that exists."
        )
        return Report(
            title=f"Overhead against a hand-written view ({dialect})",
            sections=[note, main.render(), features_note, extras.render()],
            headlines=[Headline(f"overhead ratio ({dialect})", ratio, TARGET)],
        )
    finally:
        dispose(app)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.overhead [--database-url URL] [--quick]``."""
    args = argument_parser(__doc__).parse_args(argv)
    url = args.database_url or default_database_url()
    report = run(url, QUICK if args.quick else Sizes(), args.durable)
    print(report.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
