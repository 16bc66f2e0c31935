"""Demo data for the shop, added when its database is empty."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from .models import PAID, PARTIALLY_REFUNDED, REFUNDED, SHIPPED, Account, Order, User

#: The password of every demo user.
DEMO_PASSWORD = "correct horse battery"

USERS = [
    ("ada@example.com", "Ada Lovelace"),
    ("grace@example.com", "Grace Hopper"),
    ("alan@example.com", "Alan Turing"),
    ("edsger@example.com", "Edsger Dijkstra"),
    ("barbara@example.com", "Barbara Liskov"),
]

# (user number, total, refunded, status, created at), numbered from 1 like the rows.
ORDERS = [
    (1, "120.00", "0.00", SHIPPED, "2025-01-06 09:12"),
    (1, "35.50", "0.00", PAID, "2025-02-14 18:40"),
    (2, "249.99", "0.00", SHIPPED, "2025-01-21 11:05"),
    (2, "18.00", "18.00", REFUNDED, "2025-02-02 08:30"),
    (3, "75.25", "25.25", PARTIALLY_REFUNDED, "2025-02-09 15:55"),
    (3, "12.99", "0.00", PAID, "2025-03-01 10:00"),
    (4, "310.00", "0.00", SHIPPED, "2025-01-30 13:20"),
    (4, "44.10", "0.00", PAID, "2025-03-03 16:45"),
    (5, "89.90", "0.00", SHIPPED, "2025-02-20 12:00"),
    (5, "15.00", "0.00", PAID, "2025-03-05 19:30"),
]

ACCOUNTS = [("Operating", "12500.00"), ("Savings", "40000.00"), ("Payroll", "8300.00")]


@cache
def _demo_password_hash() -> str:
    # Hashing is slow on purpose; every demo user shares the one password anyway.
    return generate_password_hash(DEMO_PASSWORD)


def seed_if_empty(session: Session) -> bool:
    """Add the demo users, orders and accounts unless the database has any of them.

    :return: whether the demo data was added.
    """
    for model in (User, Order, Account):
        if session.scalar(select(func.count()).select_from(model)):
            return False
    users = [
        User(email=email, name=name, password_hash=_demo_password_hash()) for email, name in USERS
    ]
    session.add_all(users)
    session.add_all(
        Order(
            user=users[number - 1],
            total=Decimal(total),
            refunded=Decimal(refunded),
            status=status,
            created_at=datetime.fromisoformat(created_at),
        )
        for number, total, refunded, status, created_at in ORDERS
    )
    session.add_all(Account(name=name, balance=Decimal(balance)) for name, balance in ACCOUNTS)
    session.commit()
    return True
