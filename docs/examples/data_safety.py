"""Data safety: record-by-record runs, row locks, secret params and the audit log."""

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from werkzeug.security import generate_password_hash

from flask_flexactions import ActionError, FlexActions

db = SQLAlchemy()
flex = FlexActions()


class Order(db.Model):
    __tablename__ = "orders"
    id = db.Column(db.Integer, primary_key=True)
    status = db.Column(db.String(20), nullable=False, default="open")
    disputed = db.Column(db.Boolean, nullable=False, default=False)


class Account(db.Model):
    __tablename__ = "accounts"
    id = db.Column(db.Integer, primary_key=True)
    balance = db.Column(db.Numeric(12, 2), nullable=False, default=0)


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    password_hash = db.Column(db.String(255))


# [per-record]
@flex.action(Order, bulk=True, atomic=False)
def close(orders, params):  # called once per record, with a one-element list
    (order,) = orders
    if order.disputed:
        raise ActionError("Disputed orders stay open.")
    order.status = "closed"
    return "closed"
# [/per-record]


# [lock]
@flex.action(Account, lock=True, params=[
    {"name": "source", "field": "ForeignKey", "required": True,
     "params": {"related_model": {"model": Account}}},
    {"name": "target", "field": "ForeignKey", "required": True,
     "params": {"related_model": {"model": Account}}},
    {"name": "amount", "field": "DecimalField", "required": True},
])
def move_money(model, params):  # both rows are locked and fresh when this runs
    if params["amount"] > params["source"].balance:
        raise ActionError(errors={"amount": ["Insufficient funds."]})
    params["source"].balance -= params["amount"]
    params["target"].balance += params["amount"]
# [/lock]


# [secret]
@flex.action(User, for_instance=True, params=[
    {"name": "password", "field": "CharField", "required": True, "secret": True},
])
def set_password(user, params):
    user.password_hash = generate_password_hash(params["password"])
# [/secret]


def create_app(database_url="sqlite:///data-safety.db", **config):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["FLEXACTIONS_TOKEN"] = "change-me"
    # [config]
    app.config.update(
        FLEXACTIONS_AUDIT="table",  # every execute attempt in the flexactions_audit table
        FLEXACTIONS_IDEMPOTENCY_TTL=24 * 3600,  # how long an Idempotency-Key is remembered
        FLEXACTIONS_RETRY_AFTER=5,  # the Retry-After of a 503 when the database is down
    )
    # [/config]
    app.config.update(config)
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    return app
