"""Who may call and what they may touch: an authenticator, permissions and row scopes."""

import hashlib

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select

from flask_flexactions import Caller, FlexActions, current_caller

db = SQLAlchemy()
flex = FlexActions()


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(254), nullable=False)
    api_key_sha256 = db.Column(db.String(64), unique=True)  # never the key itself
    roles = db.Column(db.String(200), nullable=False, default="")  # e.g. "support,finance"
    region = db.Column(db.String(8), nullable=False)


class Order(db.Model):
    __tablename__ = "orders"
    id = db.Column(db.Integer, primary_key=True)
    region = db.Column(db.String(8), nullable=False)
    refunded_by = db.Column(db.String(40))


# [authenticator]
@flex.authenticator
def authenticate(request):
    key = request.headers.get("X-Api-Key", "")
    digest = hashlib.sha256(key.encode()).hexdigest()
    user = db.session.scalar(select(User).where(User.api_key_sha256 == digest)) if key else None
    if user is None:
        return None  # 401
    roles = [role for role in user.roles.split(",") if role]
    return Caller(id=str(user.id), name=user.email, roles=roles, user=user)
# [/authenticator]


# [permissions]
@flex.action(Order, for_instance=True, permission="support")  # a role the caller must hold
def refund(order, params):
    order.refunded_by = current_caller.id  # who ran it
    return f"Refunded order #{order.id}."


def in_europe(caller, action, model):  # or any callable (caller, action, model) -> bool
    return caller.superuser or (caller.user is not None and caller.user.region == "eu")


@flex.action(Order, permission=in_europe)
def export_vat_report(model, params):
    return "The VAT report is on its way."
# [/permissions]


# [scope]
@flex.scope(Order)
def own_region(statement, caller):
    if caller.superuser:  # the shared token, a Jet Admin owner: every row
        return statement
    region = caller.user.region if caller.user is not None else None
    return statement.where(Order.region == region)  # no user of ours: no rows
# [/scope]


def create_app(database_url="sqlite:///security.db", jet_admin=False, **config):
    """The app with callers authenticated by their API key, or by Jet Admin's tokens."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    if jet_admin:
        # [jet-admin]
        app.config.update(
            FLEXACTIONS_JET_PROJECT="my-shop",  # accepts Authorization: JWT <token> of this project
            FLEXACTIONS_JET_PROJECT_TOKEN="<your project token>",  # accepts Token/ProjectToken
            FLEXACTIONS_CORS_ORIGINS=["https://app.jetadmin.io"],
        )
        # [/jet-admin]
    else:
        app.config["FLEXACTIONS_TOKEN"] = "change-me"
        # [cors]
        app.config.update(
            # Jet Admin's own origin, and the custom domain your team opens Jet Admin on.
            FLEXACTIONS_CORS_ORIGINS=["https://app.jetadmin.io", "https://admin.example.com"],
            # Request headers a browser may send on top of Authorization and Content-Type.
            FLEXACTIONS_CORS_ALLOW_HEADERS=["X-Api-Key"],
        )
        # [/cors]
    app.config.update(config)
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    return app
