"""The customer's order routes: place (cash on delivery, or with an online payment), pay, resume a payment,
read, cancel.

They call the checkout use cases of `payments/` and the order services of `orders/`."""
from uuid import UUID

from flask import g

from orders_service.api.blueprint import Blueprint
from orders_service.api.context import db_session, payment_gateway, settings
from orders_service.api.errors import error_example
from orders_service.api.orders.schemas import (
    IdempotencyHeaderSchema,
    OrderInSchema,
    OrderPageSchema,
    OrderQuerySchema,
    OrderSchema,
    PaymentProcessingSchema,
    PaymentStartedSchema,
    PaymentStateSchema,
)
from orders_service.api.rate_limits import ORDERS, PAYMENT_CHECKS, limited
from orders_service.api.security import authenticated, current_actor
from orders_service.orders import service
from orders_service.orders.models import PaymentMethod, PaymentStatus
from orders_service.orders.payment_state import payment_state
from orders_service.payments import checkout

# The seed's examples (seed-api-reference.txt), shown in the OpenAPI document.
_ADDRESS = {"street": "123 Main St", "city": "New York", "state": "NY", "zipCode": "10001", "country": "USA"}
WITH_PAYMENT_EXAMPLE = {
    "customerId": "customer-uuid", "deliveryMethodId": "delivery-method-uuid", "deliveryAddress": _ADDRESS,
    "items": [{"productId": "product-uuid-1", "quantity": 2, "variantId": None},
              {"productId": "product-uuid-2", "quantity": 1, "variantId": "variant-uuid"}],
    "notes": "Please ring doorbell upon delivery",
}
CASH_ON_DELIVERY_EXAMPLE = {"customerId": "customer-uuid", "deliveryMethodId": "delivery-method-uuid",
                            "deliveryAddress": _ADDRESS, "items": [{"productId": "product-uuid", "quantity": 1}]}
PAYMENT_STARTED_EXAMPLE = {"orderId": "order-uuid", "clientSecret": "pi_1234567890_secret_abcdefghijklmnop",
                           "totalAmount": 459.98, "currency": "USD"}
_NOT_YOURS = "customerId is not the authenticated customer (admins may order for anyone)"


INSUFFICIENT_STOCK = error_example(400, "Product 'Premium Headphones' has insufficient stock. Available: 1, "
                                         "Requested: 2")
NO_DELIVERY_METHOD = error_example(404, "Delivery method not found")
TOO_MANY_ORDERS = "Too many orders from this customer (ORDER_RATE_LIMIT); nothing reserved; see Retry-After"

blp = Blueprint("orders", __name__, url_prefix="/api/orders", description="Placing and reading orders")


@blp.route("", methods=["POST"])
@authenticated()
@limited(ORDERS)
@blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
@blp.arguments(OrderInSchema, example=CASH_ON_DELIVERY_EXAMPLE)
@blp.response(204, headers={"Location": {"description": "/api/orders/{orderId}", "schema": {"type": "string"}}})
@blp.alt_response(400, description="Invalid order data, insufficient stock, price changed, no cash on delivery",
                  example=INSUFFICIENT_STOCK)
@blp.alt_response(403, description=_NOT_YOURS)
@blp.alt_response(404, description="Customer, delivery method or product not found", example=NO_DELIVERY_METHOD)
@blp.alt_response(429, description=TOO_MANY_ORDERS)
def place_order(body, idempotency_key=None):
    placed = service.place_order(
        db_session(), current_actor(), body, PaymentMethod.CASH_ON_DELIVERY, settings().currency,
        idempotency_key=idempotency_key, idempotency_scope="cash_on_delivery",
    )
    g.order_id = placed.order.id  # for the request's log line
    return "", 204, {"Location": f"/api/orders/{placed.order.id}"}


@blp.route("/with-payment", methods=["POST"])
@authenticated()
@limited(ORDERS)
@blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
@blp.arguments(OrderInSchema, example=WITH_PAYMENT_EXAMPLE)
@blp.response(200, PaymentStartedSchema, example=PAYMENT_STARTED_EXAMPLE)
@blp.alt_response(400, description="Invalid order data, insufficient stock, price changed", example=INSUFFICIENT_STOCK)
@blp.alt_response(403, description=_NOT_YOURS)
@blp.alt_response(404, description="Customer, delivery method or product not found", example=NO_DELIVERY_METHOD)
@blp.alt_response(429, description=TOO_MANY_ORDERS)
@blp.alt_response(500, description="Failed to initialize payment: the provider's reason",
                  example=error_example(500, "Failed to initialize payment: [error details]"))
def place_order_with_payment(body, idempotency_key=None):
    order = checkout.place_online_order(
        db_session(), payment_gateway(), current_actor(), body, settings().currency, idempotency_key
    )
    g.order_id = order.id
    return order


_PROCESSING = PaymentProcessingSchema()


@blp.route("/<uuid:order_id>/paid", methods=["PATCH"])
@authenticated()
@limited(PAYMENT_CHECKS)
@blp.response(204, description="The payment succeeded: the order is confirmed")
@blp.alt_response(202, schema=PaymentProcessingSchema, example={"orderId": "order-uuid", "paymentStatus": "processing"},
                  description="The provider accepted the payment and confirms it later (a bank debit): the "
                              "order keeps its stock and is confirmed or failed by the provider's outcome")
@blp.alt_response(400, description="Already paid, not paid at the provider (the message names its status, "
                                   "requires_action included), closed, or a cash-on-delivery order",
                  example=error_example(400, "Order has already been marked as paid"))
@blp.alt_response(404, description="Unknown order, or another customer's")
@blp.alt_response(429, description="Too many payment checks from this customer (PAYMENT_CHECK_RATE_LIMIT); "
                                   "see Retry-After")
def mark_order_paid(order_id: UUID):
    status = checkout.confirm_paid(db_session(), payment_gateway(), current_actor(), order_id)
    if status == PaymentStatus.PROCESSING:
        return _PROCESSING.dump({"order_id": order_id, "payment_status": status}), 202
    return None


@blp.route("/<uuid:order_id>/payment", methods=["GET"])
@authenticated()
@blp.response(200, PaymentStateSchema, example={
    "orderId": "order-uuid", "paymentStatus": "action_required",
    "clientSecret": PAYMENT_STARTED_EXAMPLE["clientSecret"],
    "nextAction": {"type": "redirect_to_url", "redirectUrl": "https://hooks.stripe.com/redirect/authenticate/src_123"},
    "lastError": None})
@blp.alt_response(404, description="Unknown order, or another customer's (the client secret is its customer's alone)")
def get_order_payment(order_id: UUID):
    """What a client needs to resume the order's payment: after a reload, a decline, or a return from a bank's
    page. Read from the order (kept current by the provider's events and `PATCH …/paid`), not from the provider."""
    return payment_state(db_session(), current_actor(), order_id)


@blp.route("", methods=["GET"])
@authenticated()
@blp.arguments(OrderQuerySchema, location="query")
@blp.response(200, OrderPageSchema)
def list_orders(args):
    return service.list_orders(db_session(), current_actor(), args.get("status"), args["page"], args["page_size"])


@blp.route("/<uuid:order_id>", methods=["GET"])
@authenticated()
@blp.response(200, OrderSchema)
def get_order(order_id: UUID):
    return service.get_order(db_session(), current_actor(), order_id)


@blp.route("/<uuid:order_id>/cancel", methods=["POST"])
@authenticated()
@blp.response(200, OrderSchema)
@blp.alt_response(400, description="The order has shipped, or is already canceled or expired")
@blp.alt_response(404, description="Unknown order, or another customer's")
def cancel_order(order_id: UUID):
    return checkout.cancel_order(db_session(), payment_gateway(), current_actor(), order_id)
