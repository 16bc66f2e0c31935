"""The benchmark's own tables, prefixed ``bench_`` so they never meet the test suite's."""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the benchmark models."""


db = SQLAlchemy(model_class=Base)


class Counter(db.Model):  # type: ignore[name-defined,misc]
    """A row a record action loads, bumps and commits."""

    __tablename__ = "bench_counters"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class Item(db.Model):  # type: ignore[name-defined,misc]
    """Rows a bulk action loads by the thousand."""

    __tablename__ = "bench_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    flagged: Mapped[bool] = mapped_column(default=False)
