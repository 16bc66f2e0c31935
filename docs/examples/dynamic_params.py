"""Dynamic params: computed options, defaults from the record, and a dry run's preview."""

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from marshmallow import Schema, fields
from sqlalchemy import select

from flask_flexactions import DynamicSelect, FlexActions

db = SQLAlchemy()
flex = FlexActions()


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(254), nullable=False)
    name = db.Column(db.String(120), nullable=False)
    is_blocked = db.Column(db.Boolean, nullable=False, default=False)


class Order(db.Model):
    __tablename__ = "orders"
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.ForeignKey("users.id"), nullable=False)
    priority = db.Column(db.Integer, nullable=False, default=1)
    note = db.Column(db.Text)


# [options]
def new_owners(values, model, rows, search):
    """values: the form's current values as sent (not validated); model: the model class
    (None for a common action); rows: the selected rows, [] when none; search: text or None."""
    query = select(User).where(User.is_blocked.is_(False)).order_by(User.id)
    if rows:
        query = query.where(User.id.not_in([order.user_id for order in rows]))
    if search:
        query = query.where(User.email.icontains(search, autoescape=True))
    return [{"value": user.id, "name": user.email} for user in db.session.scalars(query)]


@flex.action(Order, for_instance=True, params=[
    {"name": "new_owner", "field": "SelectField", "required": True,
     "params": {"options": new_owners}},
    {"name": "priority", "field": "SelectField", "params": {"options": [
        {"value": 1, "name": "Low", "color": "green"},
        {"value": 2, "name": "High", "color": "red"},
    ]}},
])
def reassign_order(order, params):
    order.user_id = params["new_owner"]
    order.priority = params.get("priority", order.priority)
    return f"Order #{order.id} now belongs to user {order.user_id}."
# [/options]


# [schema-options]
class AssignParams(Schema):
    owner = DynamicSelect(new_owners, required=True)
    note = fields.String()


@flex.action(Order, bulk=True, params=AssignParams)
def assign_orders(orders, params):
    for order in orders:
        order.user_id = params["owner"]
    return f"Assigned {len(orders)} orders."
# [/schema-options]


# [defaults]
@flex.action(User, for_instance=True, params=[
    {"name": "name", "field": "CharField", "default": lambda user: user.name},  # from the row
    {"name": "notify", "field": "BooleanField", "default": True},  # a JSON value
])
def rename_user(user, params):
    user.name = params["name"]
    return f"{user.email} is now called {user.name}" + (" (notified)." if params["notify"] else ".")
# [/defaults]


# [preview]
def block_preview(users, params):
    already = sum(user.is_blocked for user in users)
    return f"Would block {len(users) - already} users ({already} already blocked)."


@flex.action(User, bulk=True, preview=block_preview)
def block_users(users, params):
    for user in users:
        user.is_blocked = True
    return f"Blocked {len(users)} users."
# [/preview]


def create_app(database_url="sqlite:///dynamic.db"):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["FLEXACTIONS_TOKEN"] = "change-me"
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    return app
