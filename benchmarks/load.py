"""Throughput under load: the example shop under gunicorn (2 workers), driven by wrk.

wrk runs in a second process against 127.0.0.1 and stops after a fixed count of requests. It
comes from Debian's packages: ``apt-get install -y wrk``. gunicorn is in the ``bench`` extra.
A request counts as an error unless it is answered 200 with ``"result": true`` (for the
action) or with the action list.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    Headline,
    Report,
    Table,
    argument_parser,
    default_database_url,
    dialect_of,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-load-token"
WRK_MISSING = (
    "wrk is not installed; the load benchmark needs it: apt-get install -y wrk "
    "(Debian/Ubuntu), then run python -m benchmarks.load again."
)
GUNICORN_MISSING = 'gunicorn is not installed: pip install -e ".[bench]"'

# Each wrk thread stops after its share of the requests and leaves a file in the marker folder;
# the driver then interrupts wrk (which otherwise waits out -d) and done() prints one JSON line.
LUA = """
local threads = {}
local counter = 0
local limit = %(limit)d
local marker = %(marker)s
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token %(token)s"

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  responses = 0
  failures = 0
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 or not string.find(body, %(expect)s, 1, true) then
    failures = failures + 1
  end
  if responses == limit then
    local file = io.open(marker .. "/" .. id, "w")
    file:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "duration_us": %%d, "p50": %%d, "p95": %%d, "p99": %%d, ' ..
    '"max": %%d, "failures": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, failed, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


def lua_string(text: str) -> str:
    """``text`` as a Lua string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare_database(url: str) -> None:
    """Fresh tables and the demo data of the shop, before the workers start."""
    from examples.shop import create_app
    from examples.shop.models import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "FLEXACTIONS_TOKEN": TOKEN})
    with app.app_context():
        db.drop_all()
        db.create_all()
        from examples.shop.seed import seed_if_empty

        seed_if_empty(db.session)
        db.session.remove()
        db.engine.dispose()


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    """Poll the Messages URL until it answers, or raise."""
    deadline = time.monotonic() + timeout
    body = json.dumps({"name": "get_action_list"}).encode()
    while True:
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Token {TOKEN}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not answer in time.")
        time.sleep(0.2)


@dataclass(frozen=True)
class Sizes:
    """Fixed request counts and wrk's connections."""

    list_requests: int = 20_000
    action_requests: int = 5_000
    connections: int = 8
    threads: int = 2
    workers: int = 2


QUICK = Sizes(list_requests=40, action_requests=40, connections=2)


def run_wrk(
    url: str, body: dict[str, Any], expect: str, total: int, sizes: Sizes
) -> dict[str, Any]:
    """Run wrk until ``total`` answers (split between its threads); its JSON summary."""
    marker = tempfile.mkdtemp(prefix="flexactions-wrk-")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            LUA
            % {
                "limit": max(1, total // sizes.threads),
                "marker": lua_string(marker),
                "body": lua_string(json.dumps(body)),
                "token": TOKEN,
                "expect": lua_string(expect),
            }
        )
    try:
        command = [
            "wrk",
            f"-t{sizes.threads}",
            f"-c{sizes.connections}",
            "-d300s",
            "--timeout",
            "10s",
            "-s",
            script.name,
            url,
        ]
        wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 330
        while wrk.poll() is None and time.monotonic() < deadline:
            if len(os.listdir(marker)) >= sizes.threads:
                wrk.send_signal(signal.SIGINT)
                break
            time.sleep(0.01)
        stdout, stderr = wrk.communicate(timeout=30)
    finally:
        os.unlink(script.name)
        shutil.rmtree(marker, ignore_errors=True)
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result: dict[str, Any] = json.loads(line[len("WRK_JSON ") :])
            return result
    raise RuntimeError(f"wrk printed no summary:\n{stdout}\n{stderr}")


def run(url: str, sizes: Sizes = Sizes()) -> Report:
    """Start gunicorn on the shop, drive it with wrk and report throughput and latency."""
    if shutil.which("wrk") is None:
        raise RuntimeError(WRK_MISSING)
    if shutil.which("gunicorn") is None:
        raise RuntimeError(GUNICORN_MISSING)
    dialect = dialect_of(url)
    prepare_database(url)
    port = free_port()
    environment = {
        **os.environ,
        "FLEXACTIONS_TOKEN": TOKEN,
        "FLEXACTIONS_BENCH_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
    }
    log = tempfile.TemporaryFile("w+")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(sizes.workers),
            # gthread keeps connections alive; sync workers close each one, and 20 000 fresh
            # connections in seconds exhaust the loopback ports (TIME_WAIT), which shows up as
            # 1 s and 3 s SYN retries in the tail latency rather than as the app's cost.
            "--worker-class",
            "gthread",
            "--threads",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT),
            "--log-level",
            "warning",
            "benchmarks.load_app:app",
        ],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    messages_url = f"http://127.0.0.1:{port}/flex/messages/"
    table = Table(["message", "requests", "req/s", "p50", "p95", "p99", "max", "errors"])
    errors_total = 0
    try:
        wait_until_up(messages_url)
        scenarios = [
            (
                "get_action_list",
                {"name": "get_action_list"},
                '"name":"refund"',
                sizes.list_requests,
            ),
            (
                "execute_action refund (record)",
                {
                    "name": "execute_action",
                    "params": {
                        "model": "orders",
                        "name": "refund",
                        "id": 3,
                        "params": {"amount": "0.01"},
                    },
                },
                '"result":true',
                sizes.action_requests,
            ),
        ]
        for label, body, expect, total in scenarios:
            result = run_wrk(messages_url, body, expect, total, sizes)
            errors = (
                result["failures"]
                + result["connect"]
                + result["read"]
                + result["write"]
                + result["timeout"]
            )
            errors_total += errors
            seconds = result["duration_us"] / 1e6
            table.add(
                label,
                f"{result['requests']:,}",
                f"{result['requests'] / seconds:,.0f}",
                f"{result['p50'] / 1000:.2f} ms",
                f"{result['p95'] / 1000:.2f} ms",
                f"{result['p99'] / 1000:.2f} ms",
                f"{result['max'] / 1000:.2f} ms",
                errors,
            )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.seek(0)
        stderr = log.read()
        log.close()
    note = (
        f"Database: {dialect}. The example shop (examples.shop) under gunicorn with "
        f"{sizes.workers} workers (gthread, 1 thread each, keep-alive) on 127.0.0.1; wrk "
        f"with {sizes.threads} threads and {sizes.connections} connections on the same "
        "2-core machine, stopped after a fixed count of answers. The action refunds 0.01 on "
        "order 3 and commits with the database's default durability (on SQLite both workers "
        "wait for one write lock). Errors: socket "
        "errors, timeouts, and answers other than 200 with the expected body."
    )
    sections = [note, table.render()]
    if errors_total and stderr.strip():
        sections.append("gunicorn's log:\n\n```\n" + stderr.strip()[-2000:] + "\n```")
    return Report(
        title=f"Throughput under load ({dialect})",
        sections=sections,
        headlines=[Headline(f"errors under load ({dialect})", float(errors_total), 0.0, "==")],
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.load [--database-url URL] [--quick]``."""
    args = argument_parser(__doc__).parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    url = args.database_url or default_database_url()
    print(run(url, QUICK if args.quick else Sizes()).render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
