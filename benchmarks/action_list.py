"""Action list scaling: ``get_action_list`` with 10 to 1 000 actions against ``json.dumps``.

The extension is asked through the Messages URL by two callers: the shared token (no action
declares a permission, everyone sees the whole list) and a caller with roles (half the actions
need a role, the caller holds one of the two; the filtered list is cached per role set). The
baseline is ``json.dumps`` of the same list that caller gets, built once, and for context a
hand-written Flask view answering that list.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response

from flask_flexactions import Caller, FlexActions

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
#: The header of the caller with roles, and what it holds.
ROLE_AUTH = {"Authorization": "Token role-caller"}
ROLE_CALLER = Caller(id="bench", name="role caller", roles=frozenset({"finance"}))
CALLERS = ("shared token", "role caller")
OPTIONS = [{"value": "a", "name": "A"}, {"value": "b", "name": "B"}, {"value": 3, "name": "C"}]


def _handler(*args: Any) -> None:
    return None


def register(flex: FlexActions, index: int, roles: bool = False) -> None:
    """Register action number ``index``: record, bulk, collection and common in turn; with
    ``roles``, every other one needs the role ``finance`` or ``support`` (in turn)."""
    name = f"action_{index}"
    kind = index % 4
    permission = None
    if roles and index % 2:
        permission = "finance" if index % 4 == 1 else "support"
    if kind == 0:
        flex.register_action(
            _handler,
            Item,
            name=name,
            for_instance=True,
            label=f"Action {index}",
            permission=permission,
            params=[
                {"name": "amount", "field": "IntegerField", "required": True},
                {"name": "reason", "field": "SelectField", "params": {"options": OPTIONS}},
            ],
        )
    elif kind == 1:
        flex.register_action(
            _handler,
            Item,
            name=name,
            bulk=True,
            permission=permission,
            params=[{"name": "note", "field": "TextField"}],
        )
    elif kind == 2:
        flex.register_action(
            _handler,
            Item,
            name=name,
            permission=permission,
            params=[{"name": "since", "field": "DateField"}],
        )
    else:
        flex.register_action(
            _handler, name=name, description="A common action.", permission=permission
        )


def _role_caller(request: Any) -> Caller | None:
    header = request.headers.get("Authorization")
    return ROLE_CALLER if header == ROLE_AUTH["Authorization"] else None


def build(url: str, count: int, roles: bool = False) -> tuple[Flask, FlexActions]:
    """An app with ``count`` registered actions; with ``roles``, half need a role and a custom
    authenticator accepts the caller with roles."""
    flex = FlexActions()
    for index in range(count):
        register(flex, index, roles)
    if roles:
        flex.authenticator(_role_caller)
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
            "caller",
            "actions listed",
            "body",
            "flex request",
            "json.dumps",
            "ratio",
            "hand-written view",
            "first request after a registration",
        ]
    )
    ratios: dict[tuple[str, int], float] = {}
    for count in sizes.counts:
        for caller in CALLERS:
            roles = caller == "role caller"
            ratios[caller, count] = _measure(url, sizes, count, roles, table)
    note = (
        f"Median of {sizes.rounds} interleaved rounds. The flex request goes through the "
        "Messages URL (authentication, envelope, CORS headers) and answers the cached body; the "
        "list is rebuilt only after a registration (last column: one request that rebuilds "
        "it). The shared token's registry declares no permission. For the role caller, every "
        "other action needs the role finance or support (in turn) and the caller holds "
        "finance, found by a custom authenticator (tried after the shared token); its "
        "filtered body is cached per role set. json.dumps is of the same list that caller "
        "gets, already built; the hand-written view answers json.dumps of that list from a "
        "plain Flask route."
    )
    key = max(sizes.counts)
    return Report(
        title="Action list scaling",
        sections=[note, table.render()],
        headlines=[
            Headline(
                f"action list with {key:,} actions, {caller}, flex/json.dumps",
                ratios[caller, key],
                TARGET,
            )
            for caller in CALLERS
        ],
    )


def _measure(url: str, sizes: Sizes, count: int, roles: bool, table: Table) -> float:
    """Add the row of ``count`` actions and one caller to ``table``; the flex/dumps ratio."""
    app, flex = build(url, count, roles)
    headers = ROLE_AUTH if roles else None
    prepared: list[Any] = []
    app.add_url_rule(
        HAND_PATH,
        "hand_actions",
        lambda listed=prepared: Response(json.dumps(listed), mimetype="application/json"),
        methods=["POST"],
    )
    try:
        flex_call = WsgiCall(app, {"name": "get_action_list"}, headers=headers)
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
            register(flex, count + extra, roles)
            start = time.perf_counter()
            flex_call()
            rebuilds.append(time.perf_counter() - start)
        flex_time, dumps_time = median(samples["flex"]), median(samples["dumps"])
        ratio = flex_time / dumps_time
        table.add(
            f"{count:,}",
            "role caller (finance)" if roles else "shared token",
            f"{len(prepared):,}",
            f"{len(prepared_bytes) / 1024:.1f} KiB",
            microseconds(flex_time),
            microseconds(dumps_time),
            f"{ratio:.2f}",
            microseconds(median(samples["hand"])),
            microseconds(median(rebuilds)),
        )
        return ratio
    finally:
        dispose(app)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.action_list [--quick]``."""
    args = argument_parser(__doc__).parse_args(argv)
    url = args.database_url or default_database_url()
    print(run(url, QUICK if args.quick else Sizes()).render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
