"""Run every benchmark: ``python -m benchmarks [--database-url URL] [--quick] [--skip-load]
[--skip-batches]``.

Overhead, bulk and load run on SQLite, and again on ``--database-url`` (or
``$FLEXACTIONS_BENCH_DATABASE_URL``) when it is given; the action list touches no database;
batched jobs (real Celery workers on the local Redis) run on ``--database-url`` only.
"""

from __future__ import annotations

import os
import shutil
import sys

from . import action_list, batches, bulk, load, overhead
from .common import DATABASE_ENV, Report, argument_parser, default_database_url


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print each report, then every headline together."""
    parser = argument_parser(__doc__)
    parser.add_argument("--skip-load", action="store_true", help="skip gunicorn + wrk")
    parser.add_argument(
        "--skip-batches", action="store_true", help="skip the batched jobs on Celery workers"
    )
    args = parser.parse_args(argv)
    server_url = args.database_url or os.environ.get(DATABASE_ENV)
    os.environ.pop(DATABASE_ENV, None)
    urls = [default_database_url()] + ([server_url] if server_url else [])
    quick = args.quick
    reports: list[Report] = []

    def show(report: Report) -> None:
        reports.append(report)
        print(report.render(), flush=True)

    for url in urls:
        show(overhead.run(url, overhead.QUICK if quick else overhead.Sizes(), args.durable))
        show(bulk.run(url, bulk.QUICK if quick else bulk.Sizes(), args.durable))
    show(action_list.run(urls[0], action_list.QUICK if quick else action_list.Sizes()))
    if not args.skip_load:
        if shutil.which("wrk") is None:
            print(load.WRK_MISSING, file=sys.stderr)
        else:
            for url in urls:
                show(load.run(url, load.QUICK if quick else load.Sizes()))
    if server_url and not args.skip_batches:
        show(batches.run(server_url, batches.QUICK if quick else batches.Sizes()))
    print("### Headlines\n")
    for report in reports:
        for headline in report.headlines:
            print(f"- {headline.render()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
