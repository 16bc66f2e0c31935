"""Fixtures for the tests of app.py, the Quickstart's app."""

import os

import pytest

# app.py reads DATABASE_URL when it is imported: the tests get a database of their own, in
# memory, and never touch instance/quickstart.db.
os.environ["DATABASE_URL"] = "sqlite://"

from app import Order, db  # noqa: E402
from app import app as quickstart_app  # noqa: E402


@pytest.fixture
def app():
    """The Quickstart's app with a fresh table holding one order of 20.00.

    ``flex_client`` (the plugin flask-flexactions installs) sends its messages to this app.
    """
    with quickstart_app.app_context():
        db.create_all()
        db.session.add(Order(id=1, total=20))
        db.session.commit()
    yield quickstart_app
    with quickstart_app.app_context():
        db.drop_all()
