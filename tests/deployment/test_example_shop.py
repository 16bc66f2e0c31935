"""The example shop as it is deployed: gunicorn on a fresh PostgreSQL database, started again
and again, and its audit log read with SQL."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.harness import (
    AUTH,
    ROOT,
    TOKEN,
    URL,
    Gunicorn,
    create_database,
    drop_database,
    execute,
    pg_url,
    query,
    record_figures,
    scalar,
)

STARTS = 4
SHOP = "examples.shop:create_app()"
USERS = 5
#: The exception that ended a worker's boot, as the last line of its traceback shows it.
BOOT_ERROR = re.compile(r"^sqlalchemy\.exc\.\w+: .{0,160}", re.MULTILINE)


@pytest.fixture
def shop_database(database: str) -> Iterator[str]:
    """The name of a database for the shop, dropped at the end (each start recreates it)."""
    name = f"{database}_shop_{uuid.uuid4().hex[:6]}"
    try:
        yield name
    finally:
        drop_database(name)


def shop_env(database: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FLEXACTIONS_", "DATABASE_URL"))
    }
    # No broker: background actions run inline, as in the shop's default deployment.
    env.update(
        DATABASE_URL=pg_url(database),
        FLEXACTIONS_TOKEN=TOKEN,
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


def users(database: str) -> int | None:
    try:
        return int(scalar(database, "SELECT count(*) FROM users"))
    except Exception:  # the table may not exist when no worker booted
        return None


# m. Every start on a fresh database boots, and seeds once


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_the_shop_boots_on_a_fresh_database_every_time(
    shop_database: str, tmp_path: Path, preload: bool
) -> None:
    starts: list[dict[str, Any]] = []
    for start in range(STARTS):
        drop_database(shop_database)
        create_database(shop_database)
        server = Gunicorn(shop_env(shop_database), tmp_path, app=SHOP, preload=preload)
        error = None
        try:
            server.wait_ready(30)
        except AssertionError as failure:
            error = str(failure).splitlines()[0]
        finally:
            master_up = server.running()
            server.stop()
        log = server.log.read_text(errors="replace")
        starts.append(
            {
                "start": start,
                "booted": error is None,
                "master_up": master_up,
                "users": users(shop_database),
                "workers_failed_to_boot": log.count("Exception in worker process"),
                "boot_errors": sorted(set(BOOT_ERROR.findall(log))),
                "error": error,
            }
        )
    record_figures(
        f"m_example_shop_fresh_database[{'preload' if preload else 'no-preload'}]",
        {
            "attempts": STARTS,
            "booted": sum(s["booted"] for s in starts),
            "master_stayed_up": sum(s["master_up"] for s in starts),
            "seeded_exactly_once": sum(s["users"] == USERS for s in starts),
            "duplicate_seeds": sum((s["users"] or 0) > USERS for s in starts),
            "starts": starts,
        },
    )
    assert [s["booted"] and s["master_up"] for s in starts] == [True] * STARTS, starts
    assert [s["users"] for s in starts] == [USERS] * STARTS, starts


# l. The audit log of reset_password


def test_the_shop_audit_log_never_holds_a_new_password(
    shop_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEXACTIONS_CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    create_database(shop_database)
    from examples.shop import create_app
    from examples.shop.models import db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": pg_url(shop_database),
            "FLEXACTIONS_TOKEN": TOKEN,
            "FLEXACTIONS_AUDIT": "table",
        }
    )
    password = f"N3w-{uuid.uuid4().hex}"
    try:
        response = app.test_client().post(
            URL,
            json=execute("reset_password", "users", id=1, params={"new_password": password}),
            headers=AUTH,
        )
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    rows = query(
        shop_database,
        "SELECT params::text, coalesce(errors::text, '') FROM flexactions_audit"
        " WHERE action = 'reset_password'",
    )
    leaked = sum(password in params or password in errors for params, errors in rows)
    record_figures(
        "l_shop_audit_reset_password",
        {"attempts": 1, "status": response.status_code, "audit_rows": len(rows), "leaked": leaked},
    )
    assert response.status_code == 200 and response.get_json()["result"] is True
    assert len(rows) == 1
    assert leaked == 0, rows
