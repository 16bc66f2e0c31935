"""Profile the hot paths with pyinstrument: ``python -m benchmarks.profile overhead|list|bulk``.

Prints pyinstrument's call tree of many repeated requests (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from .common import WsgiCall, argument_parser, default_database_url, dispose
from .models import Item, db

PATHS = ("overhead", "hand", "list", "bulk")


def _overhead(url: str, hand: bool) -> tuple[Callable[[], object], Callable[[], None]]:
    from . import overhead

    app = overhead.build(url)
    path = overhead.HAND_PATH if hand else "/flex/messages/"
    call = WsgiCall(app, overhead.message(), path=path)
    call.check()
    return call, lambda: dispose(app)


def _action_list(url: str) -> tuple[Callable[[], object], Callable[[], None]]:
    from . import action_list

    app, _ = action_list.build(url, 1000)
    call = WsgiCall(app, {"name": "get_action_list"})
    call.check(b'"name"')
    return call, lambda: dispose(app)


def _bulk(url: str) -> tuple[Callable[[], object], Callable[[], None]]:
    from . import bulk

    app = bulk.build(url)
    bulk.fill(app, 10_000)
    with app.app_context():
        ids = list(db.session.scalars(db.select(Item.id).order_by(Item.id)))
    call = WsgiCall(app, bulk.message(ids))
    call.check()
    return call, lambda: dispose(app)


def main(argv: list[str] | None = None) -> int:
    """Profile one path and print the call tree."""
    parser = argument_parser(__doc__)
    parser.add_argument("path", choices=PATHS)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler
    except ImportError:
        print('pyinstrument is missing: pip install -e ".[bench]"', file=sys.stderr)
        return 2
    url = args.database_url or default_database_url()
    if args.path in ("overhead", "hand"):
        call, done = _overhead(url, args.path == "hand")
    elif args.path == "list":
        call, done = _action_list(url)
    else:
        call, done = _bulk(url)
    count = max(1, args.requests // 100) if args.path == "bulk" else args.requests
    try:
        for _ in range(min(count, 200)):
            call()
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for _ in range(count):
            call()
        profiler.stop()
    finally:
        done()
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
