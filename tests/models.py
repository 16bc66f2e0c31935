"""Models the tests act on, covering each kind of primary key."""

from __future__ import annotations

import decimal
import uuid

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(db.Model):
    __tablename__ = "users"
    __flexactions_label__ = "name"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    is_blocked: Mapped[bool] = mapped_column(default=False)


class Order(db.Model):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    total: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(12, 2))
    refunded: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(12, 2), default=0)
    note: Mapped[str | None] = mapped_column(sa.Text)


class Account(db.Model):
    """A model with a Django-style wire name."""

    __tablename__ = "accounts"
    __flexactions_name__ = "shop;account"

    id: Mapped[int] = mapped_column(primary_key=True)
    balance: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(12, 2))


class Tag(db.Model):
    """A model with a text primary key."""

    __tablename__ = "tags"
    __flexactions_label__ = "label"

    code: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(80), default="")


class Device(db.Model):
    """A model with a UUID primary key."""

    __tablename__ = "devices"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(80), default="")


class Membership(db.Model):
    """A model with a composite primary key."""

    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    group: Mapped[str] = mapped_column(sa.String(32), primary_key=True)


class Price(db.Model):
    """A model whose primary key type has no id grammar (Numeric)."""

    __tablename__ = "prices"

    amount: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(10, 2), primary_key=True)
