"""Fork safety: an engine the extension uses never hands out a connection made in another process.

gunicorn ``--preload``, Celery's prefork pool and ``multiprocessing`` fork a process whose pool
may already hold connections (``db.create_all()`` at start-up leaves one). Two processes then
talk over one database socket: their statements interleave, one commits inside the other's
transaction, and a ``kill -9`` no longer rolls back what the killed process wrote. This module
applies SQLAlchemy's documented recipe for pools across ``os.fork()`` ("Using Connection Pools
with Multiprocessing or os.fork()") to every engine of the app, so users need no code of their
own:

- after ``os.fork()``, the child replaces each pool with an empty one without closing the
  parent's connections (``engine.dispose(close=False)``);
- each connection remembers the process that opened it, and a checkout in any other process
  (a fork that bypassed ``os.fork``, or a connection returned to the pool after the fork)
  discards it unclosed and opens a new one.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import sqlalchemy as sa

#: Where a pooled connection keeps the id of the process that opened it.
PID_KEY = "flexactions_pid"

#: Engines to reset in a forked child. Process-wide on purpose: a fork is.
_guarded: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def guard_engine(engine: sa.Engine) -> None:
    """Make ``engine`` fork-safe; calling it again for the same engine does nothing.

    Pools of a single connection (in-memory SQLite) are left alone: a forked child gets a
    copy of such a database, not a shared socket, and a new connection would be empty.
    """
    if engine in _guarded or isinstance(engine.pool, _SINGLE_CONNECTION_POOLS):
        return
    sa.event.listen(engine, "connect", _remember_process)
    sa.event.listen(engine, "checkout", _refuse_foreign_connection)
    checked_out = getattr(engine.pool, "checkedout", None)
    if checked_out is None or not checked_out():
        # Connections pooled before now carry no process id: close them (this process
        # opened them) so that every connection handed out from now on carries one.
        engine.dispose()
    _guarded.add(engine)


_SINGLE_CONNECTION_POOLS = (sa.pool.StaticPool, sa.pool.SingletonThreadPool)


def _remember_process(dbapi_connection: Any, record: Any) -> None:
    record.info[PID_KEY] = os.getpid()


def _refuse_foreign_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # A connection without a process id was checked out while the guard was installed: this
    # process opened it.
    if record.info.setdefault(PID_KEY, os.getpid()) != os.getpid():
        # Forget the driver connection without closing it: closing would end the session
        # of the process that owns the socket.
        record.dbapi_connection = proxy.dbapi_connection = None
        raise sa.exc.DisconnectionError(
            "This pooled connection was opened by another process; opening a new one."
        )


def _reset_after_fork() -> None:
    for engine in list(_guarded):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_reset_after_fork)
