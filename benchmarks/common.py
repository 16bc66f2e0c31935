"""What every benchmark shares: the database URL, the app, timing rounds, SQL counts, tables."""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from werkzeug.test import EnvironBuilder

from flask_flexactions import FlexActions

from .models import db

#: Environment variable naming the database, e.g. a PostgreSQL URL.
DATABASE_ENV = "FLEXACTIONS_BENCH_DATABASE_URL"
TOKEN = "bench-shared-token"
AUTH = {"Authorization": f"Token {TOKEN}"}
URL = "/flex/messages/"


def default_database_url() -> str:
    """The URL of ``$FLEXACTIONS_BENCH_DATABASE_URL``, else an SQLite file in a temp folder."""
    url = os.environ.get(DATABASE_ENV)
    if url:
        return url
    folder = Path(tempfile.gettempdir()) / "flexactions-bench"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{folder / f'bench-{os.getpid()}.db'}"


def dialect_of(url: str) -> str:
    """``sqlite`` or ``postgresql`` (the part of the URL before ``+`` or ``:``)."""
    return url.split(":", 1)[0].split("+", 1)[0]


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"SQLAlchemy URL (default: ${DATABASE_ENV}, else an SQLite file in a temp folder)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds and smaller sizes, for a smoke run"
    )
    parser.add_argument(
        "--durable",
        action="store_true",
        help="keep the database's default durability (an fsync per commit)",
    )
    return parser


def _relax_sqlite(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_app(
    url: str, flex: FlexActions, *, durable: bool = False, fresh: bool = True, **config: Any
) -> Flask:
    """A Flask app on ``url`` with ``flex`` at ``/flex`` and, if ``fresh``, new benchmark tables.

    Unless ``durable``, commits do not wait for the disk (SQLite: WAL with
    ``synchronous=NORMAL``; PostgreSQL: ``synchronous_commit=off``), so that an fsync of
    several milliseconds does not hide the microseconds the extension costs.
    """
    app = Flask("flexactions_bench")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        FLEXACTIONS_TOKEN=TOKEN,
        FLEXACTIONS_CORS_ORIGINS=["https://app.jetadmin.io"],
    )
    if not durable and dialect_of(url) == "postgresql":
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "connect_args": {"options": "-c synchronous_commit=off"}
        }
    app.config.update(config)
    db.init_app(app)
    flex.init_app(app, db=db)
    if not durable and dialect_of(url) == "sqlite":
        with app.app_context():
            sa.event.listen(db.engine, "connect", _relax_sqlite)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    if fresh:
        with app.app_context():
            db.drop_all()
            db.create_all()
    return app


def dispose(app: Flask, drop: bool = True) -> None:
    """Drop the benchmark tables (unless not ``drop``) and close the app's connections."""
    with app.app_context():
        db.session.remove()
        if drop:
            db.drop_all()
        db.engine.dispose()


class WsgiCall:
    """One prepared request, sent straight to the WSGI app (no test client in the timing).

    The environ is built once; each call copies it and gives it a fresh body stream, and a
    new value of the header ``unique_header`` when one is named (e.g. ``Idempotency-Key``).
    """

    def __init__(
        self,
        app: Flask,
        body: Any,
        path: str = URL,
        headers: dict[str, str] | None = None,
        unique_header: str | None = None,
    ) -> None:
        self.app = app
        self.unique_key = (
            None if unique_header is None else "HTTP_" + unique_header.upper().replace("-", "_")
        )
        self.prefix = uuid.uuid4().hex
        self.sent = 0
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        builder = EnvironBuilder(
            path=path,
            method="POST",
            data=self.body,
            headers=list((AUTH if headers is None else headers).items()),
            content_type="application/json",
        )
        self.environ = builder.get_environ()
        builder.close()

    def __call__(self) -> tuple[int, bytes]:
        environ = dict(self.environ)
        environ["wsgi.input"] = io.BytesIO(self.body)
        if self.unique_key is not None:
            self.sent += 1
            environ[self.unique_key] = f"{self.prefix}-{self.sent}"
        statuses: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            statuses.append(status)
            return None

        chunks = self.app.wsgi_app(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return int(statuses[0][:3]), data

    def check(self, expect: bytes = b'"result":true') -> bytes:
        """Send once and fail loudly unless the answer is 200 and contains ``expect``."""
        status, data = self()
        if status != 200 or expect not in data:
            raise RuntimeError(f"Benchmark request failed: {status} {data[:300]!r}")
        return data


def interleave(
    cases: dict[str, Callable[[], object]], rounds: int, per_round: int, warmup: int
) -> dict[str, list[float]]:
    """Per-call seconds of each case, one sample per round, rounds interleaved A, B, A, B...

    Every case is warmed up first; the garbage collector runs between rounds, not inside them.
    """
    for case in cases.values():
        for _ in range(warmup):
            case()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            gc.collect()
            start = time.perf_counter()
            for _ in range(per_round):
                case()
            samples[name].append((time.perf_counter() - start) / per_round)
    return samples


def median(values: Iterable[float]) -> float:
    """The median of ``values``."""
    return statistics.median(list(values))


@dataclass
class StatementCounter:
    """Counts SQL statements on an engine with a ``before_cursor_execute`` listener."""

    engine: sa.Engine
    count: int = 0

    def _listener(self, *args: Any) -> None:
        self.count += 1

    @contextmanager
    def counting(self) -> Iterator[StatementCounter]:
        """Count the statements run inside the block (``self.count`` after it)."""
        self.count = 0
        sa.event.listen(self.engine, "before_cursor_execute", self._listener)
        try:
            yield self
        finally:
            sa.event.remove(self.engine, "before_cursor_execute", self._listener)


def statements(app: Flask, call: Callable[[], object]) -> int:
    """How many SQL statements one ``call()`` runs."""
    with app.app_context():
        engine = db.engine
    with StatementCounter(engine).counting() as counter:
        call()
    return counter.count


def peak_memory(call: Callable[[], object]) -> int:
    """Peak bytes allocated by Python during one ``call()`` (``tracemalloc``)."""
    gc.collect()
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@dataclass
class Table:
    """A plain-text (Markdown) table."""

    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        """Append a row; cells are shown with ``str``."""
        self.rows.append([str(cell) for cell in cells])

    def render(self) -> str:
        """The table as Markdown with aligned columns."""
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(self.headers), rule, *(line(row) for row in self.rows)])


@dataclass
class Headline:
    """A benchmark's headline: a ratio (or count) against its target."""

    name: str
    value: float
    target: float
    #: ``"<="``: lower is better (ratios); ``">="``: higher is better (speedups); ``"=="``:
    #: must equal (error counts).
    compare: str = "<="

    @property
    def met(self) -> bool:
        """Whether the value meets the target."""
        if self.compare == "==":
            return self.value == self.target
        if self.compare == ">=":
            return self.value >= self.target
        return self.value <= self.target

    def render(self) -> str:
        """``overhead ratio (sqlite): 1.04 (target <= 1.10) met``."""
        verdict = "met" if self.met else "MISSED"
        shown = f"{self.value:.0f}" if self.compare == "==" else f"{self.value:.2f}"
        target = f"{self.target:.0f}" if self.compare == "==" else f"{self.target:.2f}"
        return f"{self.name}: {shown} (target {self.compare} {target}) {verdict}"


@dataclass
class Report:
    """What a benchmark prints: a title, tables with notes, and its headlines."""

    title: str
    sections: list[str] = field(default_factory=list)
    headlines: list[Headline] = field(default_factory=list)

    def render(self) -> str:
        """The report as Markdown."""
        parts = [f"### {self.title}", *self.sections]
        parts.extend(f"**Headline** {headline.render()}" for headline in self.headlines)
        return "\n\n".join(parts) + "\n"


def microseconds(seconds: float) -> str:
    """``123.4 us``."""
    return f"{seconds * 1e6:.1f} us"


def milliseconds(seconds: float) -> str:
    """``12.34 ms``."""
    return f"{seconds * 1e3:.2f} ms"


def mebibytes(size: int) -> str:
    """``1.23 MiB``."""
    return f"{size / 2**20:.2f} MiB"
