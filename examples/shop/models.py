"""The shop's database: users, their orders and the company's bank accounts."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Order statuses, in the order an order goes through them.
PAID = "paid"
SHIPPED = "shipped"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"


class Base(DeclarativeBase):
    """Declarative base of the shop's models."""


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    """The current UTC time, naive, as SQLite stores it."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class User(db.Model):
    """A customer account. Its wire name (collection) is its table name, ``users``."""

    __tablename__ = "users"
    #: The column the debug console's ForeignKey picker shows and searches.
    __flexactions_label__ = "email"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_blocked: Mapped[bool] = mapped_column(default=False)
    blocked_reason: Mapped[str | None] = mapped_column(String(40))

    orders: Mapped[list[Order]] = relationship(back_populates="user")


class Order(db.Model):
    """A customer's order; ``refunded`` is how much of ``total`` was paid back."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    refunded: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
    status: Mapped[str] = mapped_column(String(20), default=PAID)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="orders")

    @property
    def refundable(self) -> Decimal:
        """What is left to refund."""
        return self.total - self.refunded


class Account(db.Model):
    """One of the company's bank accounts.

    Its wire name is its table name, ``accounts``. A model can set another one with
    ``__flexactions_name__ = "shop;account"``; it must match the collection's name in Jet Admin.
    """

    __tablename__ = "accounts"
    __flexactions_label__ = "name"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    balance: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
