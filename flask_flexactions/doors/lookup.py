"""``get_related_options``: the read-only search behind the console's ForeignKey picker."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import g
from werkzeug.wrappers import Response as BaseResponse

from ..access.permissions import may_run
from ..caller import CALLER_KEY, Caller
from ..declare.fields import ForeignKey
from ..declare.models import Collection, mapper_of
from ..errors import InvalidId, NotFound, ProtocolError
from ..run.answers import json_response

if TYPE_CHECKING:
    from ..declare.actions import Action
    from .state import AppState

#: Class attribute naming the column shown for a row in the picker, e.g.
#: ``__flexactions_label__ = "email"``. Without it the primary key is shown.
LABEL_ATTRIBUTE = "__flexactions_label__"

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_SEARCH = 200
#: Keeps the offset of a page within what every database takes.
MAX_PAGE = 1_000_000


def get_related_options(state: AppState, params: dict[str, Any]) -> BaseResponse:
    """Answer ``get_related_options``: rows of a ForeignKey's related model, one page at a time.

    Params: ``model`` (the wire name), ``search`` (text the display column or the id must
    contain or equal), ``page`` (from 1) and ``limit`` (at most 100). Only models that some
    registered ForeignKey param of an action the caller may run points to can be searched, and
    only within the model's row scope. The answer is
    ``{"results": [{"id": ..., "label": ...}], "has_more": bool}``.
    """
    name = params.get("model")
    if not isinstance(name, str) or not name:
        raise ProtocolError("get_related_options needs params.model, the related model's name.")
    collection = _searchable(state, name)
    search = params.get("search")
    if search is None:
        search = ""
    if not isinstance(search, str) or len(search) > MAX_SEARCH or "\x00" in search:
        raise ProtocolError(
            f"params.search must be a string of at most {MAX_SEARCH} characters, without NUL."
        )
    page = _positive(params.get("page"), "page", 1, MAX_PAGE)
    limit = _positive(params.get("limit"), "limit", DEFAULT_LIMIT, MAX_LIMIT)
    label = label_column(collection)
    rows = _related_rows(state, collection, label, search, (page - 1) * limit, limit + 1)
    pk = collection.pk_attribute.key
    results = [
        {"id": _json_id(getattr(row, pk)), "label": _label(getattr(row, label.key))}
        for row in rows[:limit]
    ]
    return json_response({"results": results, "has_more": len(rows) > limit})


def _searchable(state: AppState, name: str) -> Collection:
    """The collection ``name``, if a ForeignKey param of an action the caller may run points
    to it."""
    caller = g.get(CALLER_KEY)
    for action in state.registry:
        for field in action.params.schema.load_fields.values():
            if isinstance(field, ForeignKey):
                collection = state.related_collection(field)
                if collection.name == name and _may_run_somewhere(caller, action):
                    return collection
    raise NotFound(f"No ForeignKey param points to a model named {name[:64]!r}.")


def _may_run_somewhere(caller: Caller, action: Action) -> bool:
    models: list[type[Any] | None] = [c.model for c in action.collections] or [None]
    return any(may_run(caller, action, model) for model in models)


def label_column(collection: Collection) -> Any:
    """The attribute shown for a row: ``__flexactions_label__``, else the primary key."""
    attribute = getattr(collection.model, LABEL_ATTRIBUTE, None)
    if attribute is None:
        return collection.pk_attribute
    columns = mapper_of(collection.model).column_attrs
    if not isinstance(attribute, str) or attribute not in columns:
        raise ValueError(
            f"{collection.model.__name__}.{LABEL_ATTRIBUTE} must name one of its column "
            f"attributes ({', '.join(sorted(columns.keys()))}), got {attribute!r}."
        )
    return getattr(collection.model, attribute)


def _related_rows(
    state: AppState, collection: Collection, label: Any, search: str, offset: int, limit: int
) -> list[Any]:
    """One page of rows within the model's scope whose label contains ``search`` or whose
    id is ``search``."""
    scoped = state.restriction(collection, g.get(CALLER_KEY))
    query = sa.select(collection.model) if scoped is None else scoped.base
    if search:
        condition = sa.cast(label, sa.String).icontains(search, autoescape=True)
        try:
            key = collection.parse_id(search, state.wide_integer_ids)
        except InvalidId:
            pass
        else:
            condition = sa.or_(condition, collection.pk_attribute == key)
        query = query.where(condition)
    query = query.order_by(collection.pk_attribute).offset(offset).limit(limit)
    return list(state.db.session.scalars(query))


def _positive(value: Any, key: str, default: int, maximum: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProtocolError(f"params.{key} must be a positive integer.")
    if value > maximum:
        raise ProtocolError(f"params.{key} must be at most {maximum}.")
    return value


def _json_id(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _label(value: Any) -> str:
    return "" if value is None else str(value)
