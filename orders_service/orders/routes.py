from uuid import UUID

from flask_smorest import Blueprint

from orders_service.auth.tokens import authenticated, current_actor
from orders_service.orders import service
from orders_service.orders.models import PaymentMethod
from orders_service.orders.schemas import (
    IdempotencyHeaderSchema,
    OrderInSchema,
    OrderPageSchema,
    OrderQuerySchema,
    OrderSchema,
)
from orders_service.web import db_session, settings

blp = Blueprint("orders", __name__, url_prefix="/api/orders", description="Placing and reading orders")


@blp.route("", methods=["POST"])
@authenticated()
@blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
@blp.arguments(OrderInSchema)
@blp.response(204)
@blp.alt_response(400, description="Invalid order data, insufficient stock, price changed, no cash on delivery")
@blp.alt_response(404, description="Customer, delivery method or product not found")
def place_cash_on_delivery_order(body, idempotency_key=None):
    placed = service.place_order(
        db_session(), current_actor(), body, PaymentMethod.CASH_ON_DELIVERY, settings().store_currency,
        idempotency_key=idempotency_key, route="cash_on_delivery",
    )
    return "", 204, {"Location": f"/api/orders/{placed.order.id}"}


@blp.route("", methods=["GET"])
@authenticated()
@blp.arguments(OrderQuerySchema, location="query")
@blp.response(200, OrderPageSchema)
def list_orders(args):
    return service.list_orders(db_session(), current_actor(), args.get("status"), args["page"], args["pageSize"])


@blp.route("/<uuid:order_id>", methods=["GET"])
@authenticated()
@blp.response(200, OrderSchema)
def get_order(order_id: UUID):
    return service.get_order(db_session(), current_actor(), order_id)
