"""Four-eyes approvals: a refund above 1000 waits for a finance lead; each step is posted to a
chat webhook."""

import json
import os
import urllib.request

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_flexactions import Approval, Caller, FlexActions
from flask_flexactions.signals import approval_decided, approval_ran, approval_requested

db = SQLAlchemy()
flex = FlexActions()


class Order(db.Model):
    __tablename__ = "orders"
    id = db.Column(db.Integer, primary_key=True)
    total = db.Column(db.Numeric(12, 2), nullable=False)
    refunded = db.Column(db.Numeric(12, 2), nullable=False, default=0)


# Approvals need to tell people apart: each caller has an id. A real app looks its users up;
# here three fixed tokens stand for them.
USERS = {
    "alice-token": Caller(id="alice", name="Alice", roles={"support"}),
    "bob-token": Caller(id="bob", name="Bob", roles={"support", "finance-lead"}),
    "carol-token": Caller(id="carol", name="Carol", roles={"finance-lead"}),
}


@flex.authenticator
def by_token(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return USERS.get(token) if scheme == "Bearer" else None


# [action]
@flex.action(
    Order,
    for_instance=True,
    params=[{"name": "amount", "field": "DecimalField", "required": True}],
    permission="support",  # who may ask
    approval=Approval(
        role="finance-lead",  # who may approve (never the one who asked)
        when=lambda params, order: params["amount"] > 1000,  # smaller refunds run at once
        reason=True,  # the requester says why
    ),
    preview=lambda order, params: f"Would refund {params['amount']} of order #{order.id}.",
)
def refund(order, params):
    order.refunded += params["amount"]
    return f"Refunded {params['amount']} of order #{order.id}."


# [/action]


# [webhook]
def post_to_chat(app, approval, **extra):
    """Tell the team's chat about each step of a request (Slack, Mattermost and Teams
    incoming webhooks all take {"text": ...})."""
    url = app.config.get("CHAT_WEBHOOK_URL")
    if not url:
        return
    who = approval["requested_by"]["name"]
    what = f"{approval['label']} on {approval['count']} record(s)"
    decided = (approval["decisions"] or [{}])[-1]
    by = (decided.get("by") or {}).get("name")
    text = {
        "pending": f"{who} asks to run {what}: {approval['reason']}. "
        f"Decide with: flask flexactions approvals show {approval['id']}",
        "approved": f"{by} approved {what}.",
        "rejected": f"{by} rejected {what}: {decided.get('comment')}",
        "ran": f"{what} ran: {(approval.get('answer') or {}).get('message')}",
        "failed": f"{what} failed: {(approval.get('answer') or {}).get('errors')}",
    }.get(approval["state"], f"The request for {what} is {approval['state']}.")
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5):  # a receiver that raises is only logged
        pass


def create_app(**config):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///shop.db")
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "change-me-to-a-long-random-string")
    app.config["FLEXACTIONS_AUDIT"] = "table"
    app.config["CHAT_WEBHOOK_URL"] = os.environ.get("CHAT_WEBHOOK_URL")
    app.config.update(config)
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    for signal in (approval_requested, approval_decided, approval_ran):
        signal.connect(post_to_chat, app)  # this app's requests only
    return app


# [/webhook]
