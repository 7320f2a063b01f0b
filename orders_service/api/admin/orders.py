"""The shop's order routes (admin): fulfilment (ship, deliver, cash collected), refunds, and the orders that
need a person."""
from uuid import UUID

from orders_service.api.blueprint import Blueprint
from orders_service.api.context import db_session, pause, payment_gateway
from orders_service.api.orders.schemas import (
    AdminOrderPatchSchema,
    AttentionQuerySchema,
    IdempotencyHeaderSchema,
    OrderSchema,
    RefundAttentionPageSchema,
    RefundInSchema,
    RefundSchema,
)
from orders_service.api.security import authenticated
from orders_service.auth.models import Role
from orders_service.payments import capture, refunds

blp = Blueprint("admin_orders", __name__, url_prefix="/api/admin/orders", description="Fulfilment (admin)")


@blp.route("", methods=["GET"])
@authenticated(role=Role.ADMIN)
@blp.arguments(AttentionQuerySchema, location="query")
@blp.response(200, RefundAttentionPageSchema)
@blp.doc(description="Orders that need a person: with `attention=refund`, closed orders still holding the "
                     "customer's money because Stripe refused their refund (retrying with growing waits, or "
                     "stopped after the last try), oldest first.")
def list_orders_needing_attention(args):
    return refunds.needing_attention(db_session(), args["page"], args["page_size"])


@blp.route("/<uuid:order_id>", methods=["PATCH"])
@authenticated(role=Role.ADMIN)
@blp.arguments(AdminOrderPatchSchema)
@blp.response(200, OrderSchema)
@blp.alt_response(400, description="A transition the state machine forbids, or a capture Stripe refused (shipping "
                                   "an order whose payment is authorized captures it first; the message names the "
                                   "reason and the order stays as it was), or another request's capture of the "
                                   "order's payment still under way after a few seconds' wait")
@blp.doc(description="Ship (`{status: shipped, trackingNumber, carrier?}`), deliver (`{status: delivered}`), or "
                     "record the cash of a cash-on-delivery order (`{paymentCollected: true}`). With "
                     "`PAYMENT_CAPTURE=on_shipment` an authorized payment is captured before the order ships.")
def update_order(body, order_id: UUID):
    return capture.update_fulfilment(db_session(), payment_gateway(), order_id, body, pause)


@blp.route("/<uuid:order_id>/refunds", methods=["POST"])
@authenticated(role=Role.ADMIN)
@blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
@blp.arguments(RefundInSchema)
@blp.response(201, RefundSchema)
@blp.alt_response(400, description="Not paid online, or more than was paid minus what was refunded")
@blp.alt_response(404, description="Unknown order")
@blp.alt_response(422, description="The Idempotency-Key was used with another body")
def refund_order(body, order_id: UUID, idempotency_key=None):
    return refunds.refund_order(db_session(), payment_gateway(), order_id, body.get("amount"), body.get("reason"),
                                idempotency_key)
