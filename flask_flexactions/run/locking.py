"""Row locks for ``lock=True``: ``SELECT ... FOR UPDATE`` in one global order, so runs that
touch the same rows queue up instead of deadlocking."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..declare.models import Collection
from ..errors import NON_FIELD_ERRORS, ActionError
from .selection import missing_message


def supports_row_locks(session: Session) -> bool:
    """Whether the session's database takes ``FOR UPDATE`` (SQLite locks the whole file)."""
    return session.get_bind().dialect.name != "sqlite"


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def lock_rows(session: Session, rows: Iterable[Any], chunk_size: int) -> None:
    """Lock ``rows`` (model instances of any models) and refresh them from the database.

    Rows are locked model by model in table-name order, and by primary key within a model, so
    any two runs take their locks in the same order. A row deleted meanwhile is an
    :class:`ActionError` naming it.
    """
    by_model: dict[type[Any], set[Any]] = defaultdict(set)
    for row in rows:
        collection = Collection.of(type(row))
        by_model[collection.model].add(getattr(row, collection.pk_attribute.key))
    for model in sorted(by_model, key=lambda m: (Collection.of(m).name, m.__name__)):
        collection = Collection.of(model)
        pk = collection.pk_attribute
        keys = sorted(by_model[model])
        locked: set[Any] = set()
        for chunk in _chunks(keys, chunk_size):
            statement = (
                sa.select(model)
                .where(pk.in_(chunk))
                .order_by(pk)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            locked.update(getattr(row, pk.key) for row in session.scalars(statement))
        missing = [key for key in keys if key not in locked]
        if missing:
            raise ActionError(errors={NON_FIELD_ERRORS: [missing_message(collection, missing)]})
