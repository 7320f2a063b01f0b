"""What the customer is told about their order: the subject and text of each kind of email."""
from __future__ import annotations

from orders_service.money import currency, describe
from orders_service.orders.events import CustomerMessages as M
from orders_service.orders.models import Order


def customer_message(order: Order, kind: str) -> tuple[str, str]:
    ref = str(order.id)[:8]
    cur = currency(order.currency)
    total = describe(order.total_cents, cur)
    refunded = describe(order.refunded_cents or 0, cur)
    return {
        M.ORDER_CONFIRMED: (f"Order {ref} confirmed", f"Thank you: your order {order.id} of {total} is confirmed."),
        M.PAYMENT_FAILED: (f"Payment for order {ref} failed",
                           f"The payment of {total} for order {order.id} failed. You can try again with "
                           "another card until the order expires."),
        M.PAYMENT_PROCESSING: (f"Payment for order {ref} is on its way",
                               f"We have your payment of {total} for order {order.id}. Your bank is still "
                               "processing it, which can take a few business days; we will confirm your order "
                               "as soon as it has gone through."),
        M.AUTHORIZATION_LAPSED: (f"Order {ref} canceled",
                                 f"Your order {order.id} has been canceled: the hold of {total} on your card "
                                 "expired before the order could ship. Nothing was charged; the hold is released "
                                 "by your bank. You are welcome to order again."),
        M.SHIPPED: (f"Order {ref} has shipped",
                    f"Your order {order.id} is on its way with {order.carrier or 'our courier'}. "
                    f"Tracking number: {order.tracking_number}."),
        M.CANCELED: (f"Order {ref} canceled", f"Your order {order.id} has been canceled."),
        M.REFUNDED: (f"Order {ref} refunded", f"{refunded} for order {order.id} has been refunded to you."),
        M.PARTIALLY_REFUNDED: (f"Part of order {ref} refunded",
                               f"{refunded} of the {total} you paid for order {order.id} has been refunded to you "
                               "so far."),
    }[kind]
