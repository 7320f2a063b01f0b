"""The Stripe events the service acts on, named once: the gateway reads their objects, the inbox picks what
to do with each, and docs/operations.md lists them as the webhook endpoint's subscription."""
from __future__ import annotations


class StripeEvents:
    PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"
    PAYMENT_INTENT_PAYMENT_FAILED = "payment_intent.payment_failed"
    PAYMENT_INTENT_CANCELED = "payment_intent.canceled"
    PAYMENT_INTENT_PROCESSING = "payment_intent.processing"  # a bank debit: the outcome comes days later
    PAYMENT_INTENT_REQUIRES_ACTION = "payment_intent.requires_action"  # 3-D Secure, a bank's or wallet's page
    # A card authorized and held (PAYMENT_CAPTURE=on_shipment): `requires_capture`, captured at shipment.
    PAYMENT_INTENT_AMOUNT_CAPTURABLE_UPDATED = "payment_intent.amount_capturable_updated"
    CHARGE_REFUNDED = "charge.refunded"
    CHARGE_DISPUTE_CREATED = "charge.dispute.created"

    # Events whose `data.object` is a PaymentIntent: Stripe's signed snapshot of the payment.
    PAYMENT_INTENT = frozenset({PAYMENT_INTENT_SUCCEEDED, PAYMENT_INTENT_PAYMENT_FAILED, PAYMENT_INTENT_CANCELED,
                                PAYMENT_INTENT_PROCESSING, PAYMENT_INTENT_REQUIRES_ACTION,
                                PAYMENT_INTENT_AMOUNT_CAPTURABLE_UPDATED})
    # Events that move an order's payment state (through `apply_payment_intent`).
    PAYMENT = PAYMENT_INTENT | {CHARGE_REFUNDED}
    DISPUTE = frozenset({CHARGE_DISPUTE_CREATED})
    # What the Stripe webhook endpoint must be subscribed to.
    SUBSCRIBED = tuple(sorted(PAYMENT | DISPUTE))
