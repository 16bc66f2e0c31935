"""An app whose actions an AI agent runs through the MCP door, under a credential of its own:
``flask --app docs/examples/mcp_agent.py flexactions mcp --auth "Bearer $AGENT_KEY"``."""

import hmac
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_flexactions import Caller, FlexActions

db = SQLAlchemy()
flex = FlexActions()


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(254), nullable=False)
    is_blocked = db.Column(db.Boolean, nullable=False, default=False)
    password_hash = db.Column(db.String(200))


# [hints]
@flex.action(User, bulk=True, permission="support", idempotent=True)  # twice changes nothing more
def block_users(users, params):
    for user in users:
        user.is_blocked = True
    return f"Blocked {len(users)} users."


@flex.action(User, for_instance=True, permission="admin", destructive=True)  # overwrites data
def clear_password(user, params):
    user.password_hash = None
    return f"Cleared the password of {user.email}."
# [/hints]


# [agent]
@flex.authenticator
def agent(request):
    expected = "Bearer " + os.environ.get("AGENT_KEY", "")
    given = request.headers.get("Authorization", "")
    if os.environ.get("AGENT_KEY") and hmac.compare_digest(given, expected):
        return Caller(id="agent", name="support agent", roles=["support"])
    return None  # 401
# [/agent]


def create_app(database_url="sqlite:///agent.db"):
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url, FLEXACTIONS_AUDIT="table")
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    return app
