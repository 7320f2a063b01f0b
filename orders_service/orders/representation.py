"""The order representation: what the API answers for an order, and what an outbound event carries as
`data.order` — one definition for both (the API's schemas import it from here)."""
from __future__ import annotations

from types import SimpleNamespace

from marshmallow import Schema, fields

from orders_service.json_fields import Money, UtcDateTime
from orders_service.orders.models import Order


class OrderItemSchema(Schema):
    productId = fields.UUID(attribute="product_id")
    variantId = fields.UUID(attribute="variant_id", allow_none=True)
    name = fields.String()
    unitPrice = Money(attribute="unit_price_cents")
    quantity = fields.Integer()
    lineTotal = Money(attribute="line_total_cents")


class OrderEventSchema(Schema):
    type = fields.String()
    at = UtcDateTime()
    detail = fields.Dict()


class OrderSchema(Schema):
    id = fields.UUID()
    customerId = fields.UUID(attribute="customer_id")
    status = fields.String()
    paymentMethod = fields.String(attribute="payment_method")
    paymentStatus = fields.String(attribute="payment_status")
    # The provider's type of the method used (`card`, `sepa_debit`, …), or null.
    paymentMethodType = fields.String(attribute="payment_method_type", allow_none=True)
    currency = fields.String()
    subtotal = Money(attribute="subtotal_cents")
    deliveryPrice = Money(attribute="delivery_price_cents")
    totalAmount = Money(attribute="total_cents")
    items = fields.List(fields.Nested(OrderItemSchema))
    deliveryMethodId = fields.UUID(attribute="delivery_method_id")
    deliveryAddress = fields.Dict(attribute="delivery_address")
    notes = fields.String(allow_none=True)
    trackingNumber = fields.String(attribute="tracking_number", allow_none=True)
    carrier = fields.String(allow_none=True)
    createdAt = UtcDateTime(attribute="created_at")
    paidAt = UtcDateTime(attribute="paid_at", allow_none=True)
    refundedAmount = Money(attribute="refunded_cents")
    disputedAt = UtcDateTime(attribute="disputed_at", allow_none=True)
    # When an authorized payment's hold lapses (it is captured before then); null unless authorized.
    captureBefore = UtcDateTime(attribute="capture_before", allow_none=True)
    events = fields.List(fields.Nested(OrderEventSchema))


_ORDER = OrderSchema()


class _AsOf:
    """The order with `trail` for its events: the trail as the change's own transaction has written it
    (the ORM's `events` collection does not see rows written with Core INSERTs); and, for an order just
    inserted with Core, its lines."""

    def __init__(self, order: Order, trail, items):
        self._order, self.events = order, trail
        if items is not None:
            self.items = items

    def __getattr__(self, name):
        return getattr(self._order, name)


def order_document(order: Order, trail, items: list[dict] | None = None) -> dict:
    """The representation of `order` as it stands, with `trail` (rows or objects with `type`, `at` and
    `detail`) as its events, ready for `json.dumps`. `items`, the rows of an order just inserted, stand for
    its lines (building ORM objects for them would cost the hot path more than the whole dump)."""
    lines = None if items is None else [SimpleNamespace(**row, order=order) for row in items]
    return _ORDER.dump(_AsOf(order, trail, lines))
