from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from orders_service.api.fields import Country, Money, StrictBoolean, StrictInteger, Text
from orders_service.api.pages import PageArgsSchema, page_schema
from orders_service.orders.models import OrderStatus

# The order representation is the domain's (outbound events carry it too): one definition, used here.
from orders_service.orders.representation import OrderEventSchema, OrderItemSchema, OrderSchema  # noqa: F401


class AddressSchema(Schema):
    street = Text(required=True, validate=validate.Length(min=1, max=200))
    city = Text(required=True, validate=validate.Length(min=1, max=100))
    state = Text(allow_none=True, validate=validate.Length(max=100))
    zipCode = Text(required=True, validate=validate.Length(min=1, max=20))
    country = Country(required=True)


class OrderItemInSchema(Schema):
    productId = fields.UUID(required=True)
    quantity = StrictInteger(required=True, validate=validate.Range(min=1, max=1000))
    variantId = fields.UUID(allow_none=True, load_default=None)
    unitPrice = Money(allow_none=True, load_default=None)


class OrderInSchema(Schema):
    customerId = fields.UUID(required=True)
    deliveryMethodId = fields.UUID(required=True)
    deliveryAddress = fields.Nested(AddressSchema, required=True)
    items = fields.List(fields.Nested(OrderItemInSchema), required=True, validate=validate.Length(min=1, max=100))
    notes = Text(allow_none=True, load_default=None, validate=validate.Length(max=1000))


class IdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = "exclude"  # every other header passes through

    idempotency_key = Text(
        data_key="Idempotency-Key", load_default=None, validate=validate.Length(min=1, max=255)
    )


class OrderQuerySchema(PageArgsSchema):
    status = Text(validate=validate.OneOf(OrderStatus.ALL))


OrderPageSchema = page_schema(OrderSchema, "OrderPage")


class PaymentStartedSchema(Schema):
    orderId = fields.UUID(attribute="id")
    clientSecret = fields.String(attribute="client_secret")
    totalAmount = Money(attribute="total_cents")
    currency = fields.String()


class AdminOrderPatchSchema(Schema):
    """One of `{status: shipped, trackingNumber, carrier?}`, `{status: delivered}`, `{paymentCollected: true}`."""

    status = Text(validate=validate.OneOf(["shipped", "delivered"]))
    trackingNumber = Text(validate=validate.Length(min=1, max=100))
    carrier = Text(allow_none=True, validate=validate.Length(max=100))
    paymentCollected = StrictBoolean(validate=validate.Equal(True))

    @validates_schema
    def _one_change(self, data, **kwargs):
        if ("status" in data) == ("paymentCollected" in data):
            raise ValidationError("Give either status or paymentCollected.")
        if data.get("status") == "shipped" and "trackingNumber" not in data:
            raise ValidationError("A shipped order needs a trackingNumber.", "trackingNumber")
        if data.get("status") != "shipped" and ("trackingNumber" in data or "carrier" in data):
            raise ValidationError("trackingNumber and carrier go with status shipped.")


class RefundInSchema(Schema):
    """`{amount?, reason?}`: no amount refunds all that is left."""

    amount = Money()
    reason = Text(allow_none=True, validate=validate.Length(max=500))


class RefundSchema(Schema):
    id = fields.UUID()
    amount = Money(attribute="amount_cents")
    status = fields.String()
