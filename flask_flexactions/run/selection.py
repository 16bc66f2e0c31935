"""Which records a request selects, and loading them in a constant number of queries."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access.scoping import Restriction
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


def parse_selection(
    request_params: dict[str, Any],
    values: dict[str, Any],
    action: Action,
    collection: Collection,
    wide_integer_ids: bool = False,
    max_ids: int | None = None,
) -> Selection:
    """Read ``id``, ``ids`` and ``inverseIds`` from the request, or raise ProtocolError (400).

    ``ids`` and ``inverseIds`` may also sit in the user's ``values`` (an older variant of the
    protocol); they are taken out of ``values`` there unless the action declares such a param.
    ``wide_integer_ids`` allows 64-bit ids on every integer key (SQLite); more than
    ``max_ids`` ids is refused before any is parsed.
    """
    request_params = hoist_selection(request_params, values, action)
    raw_ids = request_params.get("ids")
    inverse = request_params.get("inverseIds")
    if inverse is None:
        inverse = False
    if not isinstance(inverse, bool):
        raise ProtocolError("inverseIds must be true or false.")
    wire_ids = _wire_ids(raw_ids)
    if request_params.get("id") is not None:
        wire_ids.insert(0, request_params["id"])
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
    if not ids and not inverse:
        raise ActionError("No records selected: send id, ids, or inverseIds.")
    return Selection(ids=ids, inverse=inverse)


def hoist_selection(
    request_params: dict[str, Any], values: dict[str, Any], action: Action
) -> dict[str, Any]:
    """``request_params`` with the ``ids`` and ``inverseIds`` that an older variant of the
    protocol sends inside the user's ``values`` moved up (out of ``values``), unless the request
    sends them itself or the action declares a param of that name."""
    moved: dict[str, Any] = {
        key: values.pop(key)
        for key in ("ids", "inverseIds")
        if key not in request_params and key in values and key not in action.params.names
    }
    return {**request_params, **moved} if moved else request_params


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
    restrict: Restriction | None = None,
) -> list[Any]:
    """Load the selected rows with one ``SELECT ... WHERE pk IN (...)`` per chunk of ids.

    Rows come in the order of the ids sent, or in primary key order for ``inverseIds``. Any id
    without a row raises :class:`ActionError` naming the missing ids. ``restrict`` narrows
    every statement (row scoping): rows outside it count as missing.
    """
    model, pk = collection.model, collection.pk_attribute
    key = pk.key
    if selection.inverse:
        base = sa.select(model) if restrict is None else restrict(sa.select(model))
        statement = base.order_by(pk)
        if len(selection.ids) <= chunk_size:
            if selection.ids:
                statement = statement.where(pk.not_in(selection.ids))
            return list(session.scalars(statement))
        # Too many exclusions for one statement: filter while reading in key order.
        excluded = set(selection.ids)
        return [row for row in session.scalars(statement) if getattr(row, key) not in excluded]
    if restrict is None and len(selection.ids) == 1:
        row = session.scalars(collection.select_by_id, {"id": selection.ids[0]}).first()
        if row is None:
            raise ActionError(
                errors={NON_FIELD_ERRORS: [missing_message(collection, selection.ids)]}
            )
        return [row]
    by_ids = collection.select_by_ids  # prepared once per model: building it costs more
    if restrict is not None:
        by_ids = restrict(sa.select(model)).where(pk.in_(sa.bindparam("ids", expanding=True)))
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
