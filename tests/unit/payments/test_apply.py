"""When money must go back: a refund is due when a closed order (expired or canceled) still holds money."""
import pytest

from orders_service.orders.models import Order
from orders_service.payments.apply import Applied, refund_due

# docs/api.md, "Orders": a closed order keeps none of the customer's money, whether it was paid in full or in part.
DUE = {("expired", "paid"), ("canceled", "paid"), ("expired", "partially_refunded"),
       ("canceled", "partially_refunded")}


@pytest.mark.parametrize("status", ["pending", "confirmed", "shipped", "delivered", "expired", "canceled"])
@pytest.mark.parametrize("payment", ["unpaid", "failed", "paid", "partially_refunded", "refunded"])
def test_a_refund_is_due_only_for_a_closed_order_holding_money(status, payment):
    order = Order(status=status, payment_status=payment)
    assert refund_due(order) is ((status, payment) in DUE)
    assert Applied(order).refund_due is refund_due(order)
