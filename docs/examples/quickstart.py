import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_flexactions import ActionError, FlexActions

db = SQLAlchemy()
flex = FlexActions()


class Order(db.Model):
    __tablename__ = "orders"
    id = db.Column(db.Integer, primary_key=True)
    total = db.Column(db.Numeric(12, 2), nullable=False)
    refunded = db.Column(db.Numeric(12, 2), nullable=False, default=0)


@flex.action(Order, for_instance=True, params=[
    {"name": "amount", "field": "DecimalField", "required": True},
])
def refund(order, params):
    if params["amount"] > order.total - order.refunded:
        raise ActionError(errors={"amount": ["More than what is left to refund."]})
    order.refunded += params["amount"]  # committed when the function returns
    return f"Refunded {params['amount']} of order #{order.id}."


app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///quickstart.db")
app.config["FLEXACTIONS_TOKEN"] = "change-me"  # the shared secret clients send
db.init_app(app)  # before flex.init_app
flex.init_app(app, db=db)
app.register_blueprint(flex.blueprint, url_prefix="/flex")  # Messages URL: /flex/messages/

if __name__ == "__main__":
    with app.app_context():
        db.create_all()  # the table, and an order to refund
        if db.session.get(Order, 1) is None:
            db.session.add(Order(id=1, total=20))
            db.session.commit()
    app.run(port=int(os.environ.get("PORT", 5001)))
