"""Action list scaling: ``get_action_list`` with 10 to 1 000 actions against ``json.dumps``.

The extension is asked through the Messages URL with the shared token as the caller; the
baseline is ``json.dumps`` of the same list, built once, and for context a hand-written Flask
view answering that list.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response

from flask_flexactions import FlexActions

from .common import (
    Headline,
    Report,
    Table,
    WsgiCall,
    argument_parser,
    default_database_url,
    dispose,
    interleave,
    make_app,
    median,
    microseconds,
)
from .models import Item

TARGET = 1.5
HAND_PATH = "/hand/actions"
OPTIONS = [{"value": "a", "name": "A"}, {"value": "b", "name": "B"}, {"value": 3, "name": "C"}]


def _handler(*args: Any) -> None:
    return None


def register(flex: FlexActions, index: int) -> None:
    """Register action number ``index``: record, bulk, collection and common in turn."""
    name = f"action_{index}"
    kind = index % 4
    if kind == 0:
        flex.register_action(
            _handler,
            Item,
            name=name,
            for_instance=True,
            label=f"Action {index}",
            params=[
                {"name": "amount", "field": "IntegerField", "required": True},
                {"name": "reason", "field": "SelectField", "params": {"options": OPTIONS}},
            ],
        )
    elif kind == 1:
        flex.register_action(
            _handler, Item, name=name, bulk=True, params=[{"name": "note", "field": "TextField"}]
        )
    elif kind == 2:
        flex.register_action(
            _handler, Item, name=name, params=[{"name": "since", "field": "DateField"}]
        )
    else:
        flex.register_action(_handler, name=name, description="A common action.")


def build(url: str, count: int) -> tuple[Flask, FlexActions]:
    """An app with ``count`` registered actions."""
    flex = FlexActions()
    for index in range(count):
        register(flex, index)
    return make_app(url, flex), flex


@dataclass(frozen=True)
class Sizes:
    """Numbers of actions and how long to measure."""

    counts: tuple[int, ...] = (10, 100, 1000)
    rounds: int = 15
    requests_per_round: int = 200
    rebuilds: int = 5


QUICK = Sizes(counts=(10,), rounds=1, requests_per_round=2, rebuilds=1)


def run(url: str, sizes: Sizes = Sizes()) -> Report:
    """Measure ``get_action_list`` and report it."""
    table = Table(
        [
            "actions",
            "body",
            "flex request",
            "json.dumps",
            "ratio",
            "hand-written view",
            "first request after a registration",
        ]
    )
    ratios: dict[int, float] = {}
    for count in sizes.counts:
        app, flex = build(url, count)
        prepared: list[Any] = []
        app.add_url_rule(
            HAND_PATH,
            "hand_actions",
            lambda listed=prepared: Response(json.dumps(listed), mimetype="application/json"),
            methods=["POST"],
        )
        try:
            flex_call = WsgiCall(app, {"name": "get_action_list"})
            body = flex_call.check(b'"name":"action_0"')
            prepared.extend(json.loads(body))
            prepared_bytes = json.dumps(prepared, separators=(",", ":")).encode()
            hand_call = WsgiCall(app, {"name": "get_action_list"}, path=HAND_PATH)
            per_round = max(1, sizes.requests_per_round * 10 // max(count, 10))
            samples = interleave(
                {
                    "flex": flex_call,
                    "dumps": lambda listed=prepared: json.dumps(listed, separators=(",", ":")),
                    "hand": hand_call,
                },
                sizes.rounds,
                per_round,
                warmup=per_round,
            )
            rebuilds = []
            for extra in range(sizes.rebuilds):
                register(flex, count + extra)
                start = time.perf_counter()
                flex_call()
                rebuilds.append(time.perf_counter() - start)
            flex_time, dumps_time = median(samples["flex"]), median(samples["dumps"])
            ratios[count] = flex_time / dumps_time
            table.add(
                f"{count:,}",
                f"{len(prepared_bytes) / 1024:.1f} KiB",
                microseconds(flex_time),
                microseconds(dumps_time),
                f"{ratios[count]:.2f}",
                microseconds(median(samples["hand"])),
                microseconds(median(rebuilds)),
            )
        finally:
            dispose(app)
    note = (
        f"Median of {sizes.rounds} interleaved rounds. The flex request goes through the "
        "Messages URL (token check, envelope, CORS headers) and answers the cached body; the "
        "list is rebuilt only after a registration (last column: one request that rebuilds "
        "it). json.dumps is of the same list, already built; the hand-written view answers "
        "json.dumps of that list from a plain Flask route."
    )
    key = max(ratios)
    return Report(
        title="Action list scaling",
        sections=[note, table.render()],
        headlines=[
            Headline(f"action list with {key:,} actions, flex/json.dumps", ratios[key], TARGET)
        ],
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.action_list [--quick]``."""
    args = argument_parser(__doc__).parse_args(argv)
    url = args.database_url or default_database_url()
    print(run(url, QUICK if args.quick else Sizes()).render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
