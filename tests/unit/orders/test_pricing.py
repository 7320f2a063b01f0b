"""Order totals from the service's own prices, in integer minor units (docs/api.md, "Placing an order": totalAmount =
sum(unit price × quantity) + delivery price)."""
import uuid

from orders_service.orders.pricing import PricedLine, order_totals


def _line(price, quantity, weight=0):
    return PricedLine(uuid.uuid4(), None, "Thing", price, quantity, weight)


def test_a_line_total_is_its_price_times_its_quantity():
    assert _line(19999, 3).line_total_cents == 59997
    assert _line(1, 1000).line_total_cents == 1000


def test_the_seeds_total():
    totals = order_totals([_line(19999, 2, weight=350), _line(5000, 1, weight=60)], 1000)
    assert (totals.subtotal_cents, totals.delivery_price_cents, totals.total_cents) == (44998, 1000, 45998)
    assert totals.weight_grams == 2 * 350 + 60


def test_no_lines_cost_only_the_delivery():
    totals = order_totals([], 500)
    assert (totals.subtotal_cents, totals.total_cents, totals.weight_grams) == (0, 500, 0)


def test_totals_are_exact_integers_at_the_largest_sizes():
    # 100 lines of 1000 × 100,000,000.00: no float anywhere, so nothing is lost.
    totals = order_totals([_line(10_000_000_000, 1000) for _ in range(100)], 1)
    assert totals.total_cents == 100 * 1000 * 10_000_000_000 + 1
    assert type(totals.total_cents) is int
