"""The shop's Flex Actions: one of each kind, from a record button to a file download."""

from __future__ import annotations

import csv
import io
from datetime import datetime, time, timezone
from decimal import Decimal
from typing import Any

from flask import Response, current_app, send_file
from markupsafe import escape
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from flask_flexactions import ActionError, FlexActions, Result

from .models import PARTIALLY_REFUNDED, REFUNDED, Account, Order, User, db

#: The shop's actions; ``create_app`` calls ``flex.init_app`` on every app it builds.
flex = FlexActions()

MIN_PASSWORD_LENGTH = 8
MAX_NAME_LENGTH = 120
CENT = Decimal("0.01")
BLOCK_REASONS = [
    {"value": "fraud", "name": "Fraud"},
    {"value": "spam", "name": "Spam"},
    {"value": "chargebacks", "name": "Too many chargebacks"},
    {"value": "abuse", "name": "Abusive behaviour"},
]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _has_cents_only(amount: Decimal) -> bool:
    return amount == amount.quantize(CENT)


# A record action: Jet Admin shows a button on each user and sends one request per user.
# destructive=True tells AI agents (the MCP door) that a run overwrites data.
@flex.action(
    User,
    for_instance=True,
    label="Reset password",
    destructive=True,
    params=[
        {
            "name": "new_password",
            "field": "CharField",
            "required": True,
            # Never written to the audit log (nor, for a background action, to its job).
            "secret": True,
            "label": "New password",
            "description": f"At least {MIN_PASSWORD_LENGTH} characters.",
        },
    ],
)
def reset_password(user: User, params: dict[str, Any]) -> str:
    """Give one user a new password; only its hash is stored."""
    password: str = params["new_password"]
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ActionError(
            errors={"new_password": [f"Use at least {MIN_PASSWORD_LENGTH} characters."]}
        )
    user.password_hash = generate_password_hash(password)
    return f"The password of {user.email} was reset."


# A record action whose param is prefilled from the record: get_action_list shows
# "default_from_record": true, and get_action_params answers the user's current name.
@flex.action(
    User,
    for_instance=True,
    label="Rename",
    params=[
        {"name": "name", "field": "CharField", "label": "Name", "default": lambda user: user.name},
    ],
)
def rename_user(user: User, params: dict[str, Any]) -> str:
    """Change a user's display name; left out, it stays as it is."""
    name: str = params["name"].strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ActionError(errors={"name": [f"Use 1 to {MAX_NAME_LENGTH} characters."]})
    user.name = name
    return f"{user.email} is now called {name}."


def _block_preview(users: list[User], params: dict[str, Any]) -> str:
    """What a dry run of block_users answers: who would be blocked, who already is."""
    already = sum(1 for user in users if user.is_blocked)
    return f"Would block {_plural(len(users) - already, 'user')} ({already} already blocked)."


# A bulk action: one request carries the ids of every selected user. A dry run
# ("dry_run": true) answers the preview's summary and blocks no one. Blocking twice
# changes nothing more: idempotent=True tells AI agents so.
@flex.action(
    User,
    bulk=True,
    label="Block users",
    preview=_block_preview,
    idempotent=True,
    params=[
        {
            "name": "reason",
            "field": "SelectField",
            "required": False,
            "label": "Reason",
            "params": {"options": BLOCK_REASONS},
        },
    ],
)
def block_users(users: list[User], params: dict[str, Any]) -> str:
    """Block the selected users from signing in."""
    for user in users:
        user.is_blocked = True
        user.blocked_reason = params.get("reason")
    return f"Blocked {_plural(len(users), 'user')}"


@flex.action(
    Order,
    for_instance=True,
    label="Refund",
    params=[
        {"name": "amount", "field": "DecimalField", "required": True, "label": "Amount"},
        {"name": "reason", "field": "TextField", "required": False, "label": "Reason"},
    ],
)
def refund(order: Order, params: dict[str, Any]) -> str:
    """Pay back part or all of what is left of one order's total."""
    if order.refundable <= 0:
        raise ActionError(f"Order #{order.id} is already fully refunded.")
    amount: Decimal = params["amount"]
    if amount <= 0:
        raise ActionError(errors={"amount": ["The amount must be greater than zero."]})
    if amount > order.refundable:
        raise ActionError(errors={"amount": [f"At most {order.refundable} can be refunded."]})
    if not _has_cents_only(amount):
        raise ActionError(errors={"amount": ["Use at most two decimal places."]})
    order.refunded += amount
    order.status = REFUNDED if order.refundable == 0 else PARTIALLY_REFUNDED
    current_app.logger.info("Refund of %s on order #%s: %s", amount, order.id, params.get("reason"))
    return f"Refunded {amount:.2f} of order #{order.id}."


# A long bulk action runs as a background job (Celery, or inline when no broker is set; see
# create_app). Each order is refunded in a SAVEPOINT of its own (atomic=False), so one that
# is already refunded fails alone; the job's progress counts the orders done.
@flex.action(Order, bulk=True, background=True, atomic=False, lock=True, label="Refund in full")
def refund_in_full(orders: list[Order], params: dict[str, Any]) -> str:
    """Refund what is left of each selected order."""
    (order,) = orders
    if order.refundable <= 0:
        raise ActionError(f"Order #{order.id} is already fully refunded.")
    amount = order.refundable
    order.refunded += amount
    order.status = REFUNDED
    return f"Refunded {amount:.2f} of order #{order.id}."


def _new_owners(
    values: dict[str, Any], model: type[Order], orders: list[Order], search: str | None
) -> list[dict[str, Any]]:
    """Who may take over the selected order: users not blocked, other than its owner, whose
    e-mail or name contains the search text."""
    query = select(User).where(User.is_blocked.is_(False)).order_by(User.email)
    if orders:
        query = query.where(User.id.not_in([order.user_id for order in orders]))
    if search:
        query = query.where(
            User.email.icontains(search, autoescape=True)
            | User.name.icontains(search, autoescape=True)
        )
    return [
        {"value": user.id, "name": f"{user.name} <{user.email}>"}
        for user in db.session.scalars(query)
    ]


# A SelectField whose options depend on the selected order: get_action_list shows
# "options": [], "dynamic": true, and the admin UI asks get_field_options for them.
@flex.action(
    Order,
    for_instance=True,
    label="Move to another customer",
    params=[
        {
            "name": "new_owner",
            "field": "SelectField",
            "required": True,
            "label": "New customer",
            "params": {"options": _new_owners},
        },
    ],
)
def reassign_order(order: Order, params: dict[str, Any]) -> str:
    """Move an order to another customer (execute_action accepts only a computed option)."""
    owner = db.session.get(User, params["new_owner"])
    if owner is None:
        raise ActionError(errors={"new_owner": ["This customer no longer exists."]})
    order.user = owner
    return f"Order #{order.id} now belongs to {owner.email}."


# A collection action (for_instance=False): it runs on the accounts table, not on one row.
# The accounts come in as ForeignKey params, already loaded; a missing one is a field error.
# Only callers with the "finance" role (a Jet Admin team of that name) see and run it; the
# shared token may run everything.
@flex.action(
    Account,
    label="Transfer money",
    permission="finance",
    params=[
        {
            "name": "account_from",
            "field": "ForeignKey",
            "required": True,
            "label": "From",
            "params": {"related_model": {"model": Account}},
        },
        {"name": "amount", "field": "DecimalField", "required": True, "label": "Amount"},
        {
            "name": "account_to",
            "field": "ForeignKey",
            "required": True,
            "label": "To",
            "params": {"related_model": {"model": Account}},
        },
        {"name": "description", "field": "TextField", "required": False},
        {"name": "date", "field": "DateTimeField", "required": False, "label": "Value date"},
    ],
)
def account_transfer(model: type[Account], params: dict[str, Any]) -> str:
    """Move money from one account to another."""
    source: Account = params["account_from"]
    target: Account = params["account_to"]
    amount: Decimal = params["amount"]
    errors: dict[str, list[str]] = {}
    if target.id == source.id:
        errors["account_to"] = ["Choose an account other than the source account."]
    if amount <= 0:
        errors["amount"] = ["The amount must be greater than zero."]
    elif amount > source.balance:
        errors["amount"] = [f"Insufficient funds: {source.name} holds {source.balance}."]
    elif not _has_cents_only(amount):
        errors["amount"] = ["Use at most two decimal places."]
    if errors:
        raise ActionError(errors=errors)
    source.balance -= amount
    target.balance += amount
    when: datetime = params.get("date") or datetime.now(timezone.utc)
    current_app.logger.info(
        "Transfer of %s from %s to %s on %s: %s",
        amount,
        source.name,
        target.name,
        when.isoformat(),
        params.get("description"),
    )
    return f"Transferred {amount:.2f} from {source.name} to {target.name} on {when:%Y-%m-%d}."


# A bulk action that answers with a file: the browser downloads it.
@flex.action(Order, bulk=True, label="Export to CSV")
def export_orders_csv(orders: list[Order], params: dict[str, Any]) -> Response:
    """Download the selected orders as a CSV file, in the order they were selected."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["id", "customer", "total", "refunded", "status", "created_at"])
    for order in orders:
        writer.writerow(
            [
                order.id,
                order.user.email,
                order.total,
                order.refunded,
                order.status,
                order.created_at.isoformat(),
            ]
        )
    return send_file(
        io.BytesIO(text.getvalue().encode()),
        mimetype="text/csv",
        as_attachment=True,
        download_name="orders.csv",
    )


def _table_row(cells: list[Any], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{escape(cell)}</{tag}>" for cell in cells) + "</tr>"


# A collection action that answers with HTML, shown in Jet Admin as it is: escape the values.
@flex.action(
    Order,
    label="Sales report",
    params=[
        {
            "name": "since",
            "field": "DateField",
            "required": False,
            "label": "Since",
            "description": "Only orders placed on or after this day.",
        },
    ],
)
def sales_report(model: type[Order], params: dict[str, Any]) -> Result:
    """Orders, sales and refunds per status, as an HTML table."""
    query = (
        select(Order.status, func.count(), func.sum(Order.total), func.sum(Order.refunded))
        .group_by(Order.status)
        .order_by(Order.status)
    )
    since = params.get("since")
    if since is not None:
        query = query.where(Order.created_at >= datetime.combine(since, time.min))
    rows = [_table_row(["Status", "Orders", "Sales", "Refunded"], tag="th")]
    count, sales, refunded = 0, Decimal(0), Decimal(0)
    for status, status_count, status_sales, status_refunded in db.session.execute(query):
        rows.append(_table_row([status, status_count, status_sales, status_refunded]))
        count += status_count
        sales += status_sales
        refunded += status_refunded
    rows.append(_table_row(["Total", count, f"{sales:.2f}", f"{refunded:.2f}"], tag="th"))
    net = sales - refunded
    return Result(
        message=f"{_plural(count, 'order')}, {net:.2f} net sales.",
        html="<table>" + "".join(rows) + "</table>",
    )


# A common action: tied to no collection, it takes only its params.
@flex.action(None, label="Ping", description="Check that the shop answers.")
def ping(params: dict[str, Any]) -> str:
    """Answer ``pong`` with the server's time."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"pong (server time {now})"
