"""A background action: a bulk refund run by a Celery worker, with progress."""

import os

from celery import Celery, Task
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_flexactions import ActionError, FlexActions, report_progress

db = SQLAlchemy()
flex = FlexActions()


class Order(db.Model):
    __tablename__ = "orders"
    id = db.Column(db.Integer, primary_key=True)
    total = db.Column(db.Numeric(12, 2), nullable=False)
    refunded = db.Column(db.Numeric(12, 2), nullable=False, default=0)
    archived = db.Column(db.Boolean, nullable=False, default=False)


# [action]
@flex.action(Order, bulk=True, background=True)
def refund_all(orders, params):
    for done, order in enumerate(orders, start=1):
        if order.refunded == order.total:
            raise ActionError(f"Order #{order.id} is already refunded.")  # rolls back all
        order.refunded = order.total
        report_progress(done, len(orders), f"order {order.id}")  # also where cancel stops it
    return f"Refunded {len(orders)} orders."
# [/action]


# [batches]
@flex.action(Order, bulk=True, background=True, batch_size=1000, label="Archive")
def archive(orders, params):
    for order in orders:  # at most 1000 rows: one batch, in a transaction of its own
        order.archived = True
# [/batches]


# [celery]
def celery_init_app(app, broker):
    """A Celery app whose tasks run inside the Flask app's context (Flask's Celery pattern)."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, broker=broker, task_cls=FlaskTask)
    # Optional: sweep stale jobs and expired keys every 5 minutes from Celery beat.
    celery.conf.beat_schedule = {
        "flexactions-sweep": {"task": "flask_flexactions.sweep", "schedule": 300.0},
    }
    return celery


def create_app(broker=None, **config):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///jobs.db")
    app.config["FLEXACTIONS_TOKEN"] = "change-me"
    app.config.update(config)
    celery = celery_init_app(app, broker or os.environ["CELERY_BROKER_URL"])
    db.init_app(app)
    flex.init_app(app, db=db, celery=celery)  # registers the tasks flask_flexactions.*
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    app.extensions["celery"] = celery
    return app
# [/celery]
