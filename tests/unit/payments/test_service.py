"""When money must go back: a refund is due when a closed order (expired or canceled) is paid."""
import pytest

from orders_service.orders.models import Order
from orders_service.payments.service import Applied

DUE = {("expired", "paid"), ("canceled", "paid")}  # CONTRACT §5: a closed order keeps no money


@pytest.mark.parametrize("status", ["pending", "confirmed", "shipped", "delivered", "expired", "canceled"])
@pytest.mark.parametrize("payment", ["unpaid", "failed", "paid", "refunded"])
def test_a_refund_is_due_only_for_a_paid_closed_order(status, payment):
    applied = Applied(Order(status=status, payment_status=payment), event=None)
    assert applied.refund_due is ((status, payment) in DUE)
