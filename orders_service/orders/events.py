"""The vocabulary of an order's audit trail: every `OrderEvent.type` the service writes, in one place."""


class OrderEvents:
    PLACED = "placed"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_ACTION_REQUIRED = "payment_action_required"  # the customer must finish a step (3-D Secure, a redirect)
    PAYMENT_PROCESSING = "payment_processing"  # the provider accepted the payment and tells the outcome later
    PAYMENT_CANCELED = "payment_canceled"  # the PaymentIntent was canceled at the provider
    PAYMENT_AUTHORIZED = "payment_authorized"  # held on the card (PAYMENT_CAPTURE=on_shipment)
    PAYMENT_CAPTURED = "payment_captured"  # the held payment taken: at shipment, or by the job before it lapses
    AUTHORIZATION_LAPSED = "authorization_lapsed"  # the provider let the hold lapse (canceled it): nothing taken
    PAYMENT_INITIALIZATION_FAILED = "payment_initialization_failed"  # no PaymentIntent could be opened
    LATE_PAYMENT_REVIVED = "late_payment_revived"  # paid after expiry, and the stock was still there
    LATE_PAYMENT_REFUND_DUE = "late_payment_refund_due"  # paid after the order closed: the money goes back
    REFUNDED = "refunded"  # in part or in full: the detail gives the amount and the total refunded so far
    REFUND_FAILED = "refund_failed"  # the provider refused a refund
    REFUND_NEEDS_ATTENTION = "refund_needs_attention"  # refused too often: the service stopped asking
    CASH_TO_HAND_BACK = "cash_to_hand_back"  # a collected cash-on-delivery order canceled by the shop
    PAYMENT_INTENT_REPLACED = "payment_intent_replaced"  # a new PaymentIntent for another attempt (emulator)
    PAYMENT_INTENT_CLOSED = "payment_intent_closed"  # the closed order's PaymentIntent is over at the provider
    CANCELED = "canceled"
    EXPIRED = "expired"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    PAYMENT_COLLECTED = "payment_collected"  # cash on delivery
    DISPUTE_OPENED = "dispute_opened"
    WEBHOOK_RECEIVED = "webhook_received"


class CustomerMessages:
    """The kinds of email a customer gets (the notification outbox's `kind`)."""

    ORDER_CONFIRMED = "order_confirmed"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_PROCESSING = "payment_processing"
    AUTHORIZATION_LAPSED = "authorization_lapsed"
    SHIPPED = "shipped"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
