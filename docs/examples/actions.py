"""Declaring actions: the four kinds, params in both formats, and what a handler returns."""

import io
from decimal import Decimal

from flask import Flask, send_file
from flask_sqlalchemy import SQLAlchemy
from marshmallow import Schema, fields
from sqlalchemy import func, select

from flask_flexactions import ActionError, FlexActions, Result
from flask_flexactions import fields as flex_fields

db = SQLAlchemy()
flex = FlexActions()


# [models]
class Account(db.Model):
    __tablename__ = "accounts"
    __flexactions_name__ = "shop;account"  # the collection's name on the wire (default: accounts)
    __flexactions_label__ = "name"  # the column the console's picker shows and searches
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    balance = db.Column(db.Numeric(12, 2), nullable=False, default=0)
    frozen = db.Column(db.Boolean, nullable=False, default=False)
# [/models]


# [kinds]
@flex.action()  # common: tied to no collection
def ping(params):
    return "pong"


@flex.action(Account)  # collection: runs on the table
def count_accounts(model, params):
    return f"{db.session.scalar(select(func.count()).select_from(model))} accounts"


@flex.action(Account, for_instance=True)  # record: one row per request
def close(account, params):
    if account.balance:
        raise ActionError(f"{account.name} still holds {account.balance}.")
    db.session.delete(account)
    return f"Closed {account.name}."


@flex.action(Account, bulk=True, label="Freeze")  # bulk: many rows in one request
def freeze(accounts, params):
    for account in accounts:
        account.frozen = True
    return f"Froze {len(accounts)} accounts."
# [/kinds]


# [dict-params]
@flex.action(Account, label="Transfer money", params=[
    {"name": "account_from", "field": "ForeignKey", "required": True,
     "params": {"related_model": {"model": Account}}},  # a model class or a wire name
    {"name": "account_to", "field": "ForeignKey", "required": True,
     "params": {"related_model": {"model": "shop;account"}}},
    {"name": "amount", "field": "DecimalField", "required": True},
    {"name": "reason", "field": "SelectField", "params": {"options": [
        {"value": "payroll", "name": "Payroll", "color": "blue"},
        {"value": "other", "name": "Other"},
    ]}},
    {"name": "note", "field": "TextField", "label": "Note", "description": "Kept in the log"},
])
def transfer(model, params):
    source, target, amount = params["account_from"], params["account_to"], params["amount"]
    if amount > source.balance:
        raise ActionError(errors={"amount": [f"{source.name} holds {source.balance}."]})
    source.balance -= amount
    target.balance += amount
    return f"Moved {amount} from {source.name} to {target.name}."
# [/dict-params]


# [schema-params]
class DepositParams(Schema):
    account = flex_fields.ForeignKey(Account, required=True)
    amount = fields.Decimal(required=True)  # a plain marshmallow field: DecimalField
    value_date = flex_fields.Date(metadata={"label": "Value date"})
    note = fields.String(metadata={"field": "TextField"})  # listed as TextField


@flex.action(Account, params=DepositParams)
def deposit(model, params):
    params["account"].balance += params["amount"]
    return f"Deposited {params['amount']} on {params['account'].name}."
# [/schema-params]


# [answers]
@flex.action(Account, label="Balances")
def balances(model, params):
    total = db.session.scalar(select(func.sum(Account.balance))) or Decimal(0)
    return Result(message=f"{total:.2f} in total", html=f"<b>{total:.2f}</b> in total")


@flex.action(Account, bulk=True, label="Export")
def export(accounts, params):
    lines = "".join(f"{account.id},{account.name},{account.balance}\n" for account in accounts)
    return send_file(io.BytesIO(lines.encode()), mimetype="text/csv",
                     as_attachment=True, download_name="accounts.csv")
# [/answers]


def create_app(database_url="sqlite:///actions.db"):
    # [setup]
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["FLEXACTIONS_TOKEN"] = "change-me"
    db.init_app(app)  # first: the extension uses the app's Flask-SQLAlchemy engines
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    # [/setup]
    return app
