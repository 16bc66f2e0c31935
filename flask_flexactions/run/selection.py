"""Which records a request selects, and loading them in a constant number of queries."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access.scoping import ScopedRows
from ..declare.actions import Action
from ..declare.models import Collection
from ..errors import NON_FIELD_ERRORS, ActionError, InvalidId, ProtocolError

#: How many missing ids an error message lists before it only counts the rest.
MISSING_IDS_SHOWN = 20


@dataclass(frozen=True)
class Selection:
    """The parsed selection: distinct ids in the order sent, or all rows except ``ids``."""

    ids: tuple[Any, ...]
    inverse: bool = False

    @property
    def empty(self) -> bool:
        """Whether it selects nothing: no ids, and not ``inverse``."""
        return not self.ids and not self.inverse

    def wire(self) -> dict[str, Any]:
        """The selection as JSON: ``{"ids": [...], "inverseIds": bool}``, each id a number or
        a string that parses back to the same key."""
        ids = [v if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in self.ids]
        return {"ids": ids, "inverseIds": self.inverse}


def parse_selection(
    wire_ids: list[Any],
    inverse: Any,
    action: Action,
    collection: Collection,
    wide_integer_ids: bool = False,
    max_ids: int | None = None,
) -> Selection:
    """Parse the ids a request sent (see :func:`wire_ids`) for ``collection``, or raise
    ProtocolError (400). An empty selection is returned as it is: running on it is a business
    error (``result: false``), answered by whoever runs it.

    ``wide_integer_ids`` allows 64-bit ids on every integer key (SQLite); more than
    ``max_ids`` ids is refused before any is parsed.
    """
    if inverse is None:
        inverse = False
    if not isinstance(inverse, bool):
        raise ProtocolError("inverseIds must be true or false.")
    if max_ids is not None and len(wire_ids) > max_ids:
        raise ProtocolError(
            f"Too many ids: {len(wire_ids)} sent, at most {max_ids} per request "
            "(FLEXACTIONS_MAX_IDS). Select fewer records, or use inverseIds to exclude a few."
        )
    try:
        ids = tuple(dict.fromkeys(collection.parse_id(v, wide_integer_ids) for v in wire_ids))
    except InvalidId as error:
        raise ProtocolError(f"Invalid id for {collection.name!r}: {error}.") from None
    if not action.bulk:
        if inverse:
            raise ProtocolError(f"{action.name!r} is a record action: inverseIds needs bulk.")
        if len(ids) > 1:
            raise ProtocolError(f"{action.name!r} is a record action: send one id, not {len(ids)}.")
    return Selection(ids=ids, inverse=inverse)


def wire_ids(id: Any, ids: Any) -> list[Any]:
    """The ids as sent: ``id`` first, then ``ids`` (an array, a comma-separated string or a
    single integer); a ProtocolError (400) for any other shape."""
    found = _wire_ids(ids)
    if id is not None:
        found.insert(0, id)
    return found


NO_RECORDS = "No records selected: send id, ids, or inverseIds."


def selection_in_values(
    values: dict[str, Any], declared: frozenset[str], ids: Any, inverse: Any
) -> tuple[Any, Any]:
    """``ids`` and ``inverse``, or, where the request did not send them, the ``ids`` and
    ``inverseIds`` that an older variant of the protocol sends inside the input ``values``
    (taken out of ``values``), unless the action declares a param of that name."""
    if ids is None and "ids" in values and "ids" not in declared:
        ids = values.pop("ids")
    if inverse is None and "inverseIds" in values and "inverseIds" not in declared:
        inverse = values.pop("inverseIds")
    return ids, inverse


def _wire_ids(raw: Any) -> list[Any]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return raw.split(",")
    if isinstance(raw, list):
        return list(raw)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return [raw]
    raise ProtocolError("ids must be an array of ids or a comma-separated string.")


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_rows(
    session: Session,
    collection: Collection,
    selection: Selection,
    chunk_size: int,
    scoped: ScopedRows | None = None,
) -> list[Any]:
    """Load the selected rows with one ``SELECT ... WHERE pk IN (...)`` per chunk of ids.

    Rows come in the order of the ids sent, or in primary key order for ``inverseIds``. Any id
    without a row raises :class:`ActionError` naming the missing ids. ``scoped`` narrows
    every statement (row scoping): rows outside it count as missing.
    """
    model, pk = collection.model, collection.pk_attribute
    key = pk.key
    if selection.inverse:
        statement = (sa.select(model) if scoped is None else scoped.base).order_by(pk)
        if len(selection.ids) <= chunk_size:
            if selection.ids:
                statement = statement.where(pk.not_in(selection.ids))
            return list(session.scalars(statement))
        # Too many exclusions for one statement: filter while reading in key order.
        excluded = set(selection.ids)
        return [row for row in session.scalars(statement) if getattr(row, key) not in excluded]
    if len(selection.ids) == 1:
        by_id = collection.select_by_id if scoped is None else scoped.by_id
        row = session.scalars(by_id, {"id": selection.ids[0]}).first()
        if row is None:
            raise ActionError(
                errors={NON_FIELD_ERRORS: [missing_message(collection, selection.ids)]}
            )
        return [row]
    # Prepared once per model (or per scope): building them costs more than running them.
    by_ids = collection.select_by_ids if scoped is None else scoped.by_ids
    found: dict[Any, Any] = {}
    for chunk in _chunks(selection.ids, chunk_size):
        for row in session.scalars(by_ids, {"ids": list(chunk)}):
            found[getattr(row, key)] = row
    missing = [value for value in selection.ids if value not in found]
    if missing:
        raise ActionError(errors={NON_FIELD_ERRORS: [missing_message(collection, missing)]})
    return [found[value] for value in selection.ids]


def missing_message(collection: Collection, missing: Sequence[Any]) -> str:
    """``No records of orders have the ids 4, 7.``, listing at most :data:`MISSING_IDS_SHOWN`."""
    shown = ", ".join(str(value) for value in missing[:MISSING_IDS_SHOWN])
    more = len(missing) - MISSING_IDS_SHOWN
    suffix = f" and {more} more" if more > 0 else ""
    if len(missing) == 1:
        return f"No record of {collection.name} has the id {shown}."
    return f"No records of {collection.name} have the ids {shown}{suffix}."
