"""Database outages: telling a database that is down, restarting or too busy from a bug.

An outage is answered 503 with ``Retry-After`` (nothing ran, or it was rolled back; retrying
later is right); any other error is a bug, answered 500 and logged with its traceback.
"""

from __future__ import annotations

import sqlalchemy as sa

#: SQLSTATE classes of a database that cannot serve now: 08 connection exception, 53
#: insufficient resources (too many connections, disk full), 57 operator intervention (a
#: server shutting down or restarting, a statement cancelled by ``statement_timeout``).
_UNAVAILABLE_CLASSES = ("08", "53", "57")
#: Single SQLSTATEs that mean the same: 55P03 a lock not granted within ``lock_timeout``.
_UNAVAILABLE_STATES = frozenset({"55P03"})
#: SQLite's primary result codes for a database that is locked, unreadable or missing:
#: SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR and SQLITE_CANTOPEN.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 14})


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database is unreachable or too busy, not that code is wrong.

    It looks at SQLAlchemy's own verdict (a connection invalidated as a disconnect, a pool
    that timed out) and then at the driver's error code; an error without a code from a
    driver's OperationalError (psycopg's "connection failed") counts as an outage.
    """
    if isinstance(error, (sa.exc.DisconnectionError, sa.exc.TimeoutError)):
        return True
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_UNAVAILABLE_CLASSES) or sqlstate in _UNAVAILABLE_STATES
    code = getattr(original, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_UNAVAILABLE
    return isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError))
