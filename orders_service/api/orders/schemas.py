from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from orders_service.api.fields import Country, Money, StrictBoolean, StrictInteger, Text, UtcDateTime
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


class PaymentProcessingSchema(Schema):
    """`PATCH …/paid` when the provider accepted the payment and confirms it later (a bank debit)."""

    orderId = fields.UUID(attribute="order_id")
    paymentStatus = fields.String(attribute="payment_status", metadata={"enum": ["processing"]})


class NextActionSchema(Schema):
    """The step the payment provider waits for from the customer."""

    type = fields.String(metadata={"description": "Stripe's `next_action.type`: `redirect_to_url` (send the customer "
                                                  "to `redirectUrl`), `use_stripe_sdk` (Stripe.js finishes it "
                                                  "with the client secret), …"})
    redirectUrl = fields.String(metadata={"description": "the page the customer must visit, when the step is one"})


class PaymentStateSchema(Schema):
    """What a client needs to resume an order's payment."""

    orderId = fields.UUID(attribute="order_id")
    paymentStatus = fields.String(attribute="payment_status")
    clientSecret = fields.String(attribute="client_secret", allow_none=True,
                                 metadata={"description": "null while the order cannot be paid"})
    nextAction = fields.Nested(NextActionSchema, attribute="next_action", allow_none=True)
    lastError = fields.String(attribute="last_error", allow_none=True,
                              metadata={"description": "the last decline's message, while the order's payment "
                                                       "is failed"})


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


class AttentionQuerySchema(PageArgsSchema):
    attention = Text(required=True, validate=validate.OneOf(["refund"]),
                     metadata={"description": "`refund`: closed orders still holding money because Stripe "
                                              "refused their refund"})


class RefundAttentionSchema(Schema):
    """A closed order still holding money because Stripe refused its refund, and where that stands."""

    order = fields.Nested(OrderSchema)
    state = fields.String(metadata={"description": "`retrying` (asked again at nextAttemptAt) or `stopped` "
                                                   "(refused too often: a person must act)"})
    failures = fields.Integer(metadata={"description": "automatic refunds Stripe refused in a row"})
    nextAttemptAt = UtcDateTime(attribute="next_attempt_at", allow_none=True)
    lastError = fields.String(attribute="last_error", allow_none=True)


RefundAttentionPageSchema = page_schema(RefundAttentionSchema, "RefundAttentionPage")
