"""The reference storefront in a real browser: headless Chromium driving /shop/ against the Procfile's web
and worker, Stripe.js and the Stripe API of the emulator behind RealStripe, webhooks on.

Used as a person uses it: every control is found by its accessible name (as a screen reader finds it), card
numbers are typed as they are printed, and what the page says is read where the shopper is looking (in the
viewport), in the shopper's words. Each step saves a screenshot; the run's summary prints the folder
(`storefront screenshots: …`).
"""
from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.support.factories import PASSWORD
from tests.support.shopper import CHROMIUM, Shopper

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make test` installs it with "
                                                "apt): the storefront needs a real browser"),
    pytest.mark.slow,
    pytest.mark.xdist_group("redis_stack"),  # one stack (and one browser for the module) in one test process
]
# As the README and the page print them.
VISA = "4242 4242 4242 4242"
THREE_D_SECURE = "4000 0025 0000 3155"
DECLINED_ON_CHARGE = "4000 0000 0000 0341"
DECLINED_ON_SAVING = "4000 0000 0000 0002"


@pytest.fixture
def shopper(browser, redis_webhooks_on, screenshots, request):
    opened = []
    stripe_js_url = requests.get(f"{redis_webhooks_on.url}/api/config", timeout=10).json()["stripeJsUrl"]

    def open_shop(name: str | None = None) -> Shopper:
        test_name = re.sub(r"\W+", "-", request.node.name.removeprefix("test_")).strip("-")
        shopper = Shopper(browser, redis_webhooks_on.url, screenshots, name or test_name, stripe_js_url=stripe_js_url)
        opened.append(shopper)
        shopper.open()
        return shopper

    yield open_shop
    for shopper in opened:
        shopper.close()


def _order(session_factory, order_id):
    from orders_service.orders.models import Order

    with session_factory() as session:
        order = session.get(Order, order_id)
        return order, [e.type for e in sorted(order.events, key=lambda e: e.at)]


def _orders_of(session_factory, email: str) -> int:
    from orders_service.auth.models import Customer
    from orders_service.orders.models import Order

    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Order).join(Customer, Order.customer_id == Customer.id)
                              .where(Customer.email == email))


def _succeeded_charges(stripe_emulator) -> list:
    return [c for c in stripe_emulator.client.v1.charges.list(params={"limit": 100}).data if c.status == "succeeded"]


def _signed_in(shop: Shopper, make, catalog, *products):
    customer = make.customer()
    for product in products or ("Premium Headphones",):
        shop.add_to_cart(product)
    shop.checkout()
    shop.account(customer.email)
    shop.deliver_to()
    return customer


def test_cash_on_delivery_closes_the_checkout_and_my_orders_follows_the_order(shopper, make, catalog,
                                                                              session_factory, redis_stack):
    shop = shopper()
    page = shop.page
    page.get_by_role("button", name="My orders").click()  # opened before ordering: it follows what comes
    shop.add_to_cart("Premium Headphones")
    shop.add_to_cart("Phone Case", variant="Clear — $24.99")
    assert "1 × Phone Case (Clear)" in shop.cart.inner_text()
    shop.checkout()
    email = "cash-buyer@example.com"
    shop.account(email, password="a long enough password", name="Cash Buyer")  # Create account
    orders = page.get_by_role("region", name="My orders")
    page.get_by_role("button", name="My orders").click()
    expect(orders.get_by_text("No orders yet.")).to_be_visible()
    shop.deliver_to()
    # The delivery price is a line of its own, and in the total.
    expect(shop.cart).to_contain_text("Delivery")
    expect(shop.cart).to_contain_text("Standard Shipping: $10.00")
    expect(shop.cart.locator("output")).to_have_text("$234.98")
    page.get_by_role("radio", name="Cash on delivery").check()
    shop.shot("checkout")
    shop.place_order(double_click=True)  # a double click places one order (one Idempotency-Key)
    confirmation = shop.wait_for_confirmation("Confirmed: you pay on delivery")
    expect(confirmation).to_be_in_viewport()
    expect(confirmation).to_contain_text("1 × Phone Case (Clear)")
    assert "$234.98" in confirmation.inner_text() and "$10.00" in confirmation.inner_text()
    shop.shot("confirmed")
    order_id = confirmation.locator("#confirmation-id").inner_text()
    assert _orders_of(session_factory, email) == 1
    # The checkout is closed: nothing to submit again, and an empty cart cannot be checked out.
    expect(page.get_by_role("button", name="Place order")).to_be_hidden()
    expect(shop.cart.get_by_role("button", name="Checkout")).to_be_disabled()
    # My orders has the new order without being asked: its date, items, status and tracking number.
    entry = orders.get_by_role("listitem").filter(has_text=order_id)
    expect(entry).to_contain_text("Confirmed: you pay on delivery")
    expect(entry).to_contain_text("1 × Premium Headphones")
    expect(entry).to_contain_text("Tracking number: none yet")
    placed_at = entry.locator("time").get_attribute("datetime")
    order, _ = _order(session_factory, order_id)
    assert placed_at.startswith(order.created_at.strftime("%Y-%m-%dT%H:%M"))
    assert str(order.created_at.year) in entry.locator("time").inner_text()

    _, admin = make.admin()
    shipped = requests.patch(f"{redis_stack.url}/api/admin/orders/{order_id}", headers=admin, timeout=10,
                             json={"status": "shipped", "trackingNumber": "1Z999AA10123456784", "carrier": "UPS"})
    assert shipped.status_code == 200, shipped.text
    page.get_by_role("button", name="My orders").click()  # opened again: read again
    expect(entry).to_contain_text("Tracking number: 1Z999AA10123456784 (UPS)")
    expect(entry).to_contain_text("Shipped: you pay on delivery")
    expect(orders).to_be_in_viewport()
    shop.shot("my-orders")


@pytest.mark.parametrize("year", ["34", "2034"])
def test_a_card_typed_as_printed_is_paid(shopper, make, catalog, session_factory, year):
    shop = shopper()
    _signed_in(shop, make, catalog)
    shop.card(VISA, year=year)  # "4242 4242 4242 4242", with its spaces; a two- or four-digit year
    shop.shot("card")
    shop.place_order()
    order_id = shop.paid()
    order, events = _order(session_factory, order_id)
    assert (order.status, order.payment_status, order.total_cents) == ("confirmed", "paid", 209_99)
    assert events.count("payment_succeeded") == 1


@pytest.mark.parametrize("number, month, year, cvc, says, field", [
    ("4242 4242 4242 4241", "12", "34", "123", "Your card number is invalid", "Card number"),
    ("4242 4242 4242", "12", "34", "123", "Your card number is incomplete", "Card number"),
    ("4242 4242 4242 4242", "13", "34", "123", "expiry month is invalid", "Expiry month"),
    ("4242 4242 4242 4242", "12", "2020", "123", "Your card has expired", "Expiry year"),
    ("4242 4242 4242 4242", "12", "3", "123", "expiry year is incomplete", "Expiry year"),
    ("4242 4242 4242 4242", "12", "34", "12", "security code is incomplete", "Security code"),
], ids=["luhn", "short", "month", "expired", "year", "cvc"])
def test_a_card_the_page_can_refuse_is_refused_before_any_order(shopper, make, catalog, session_factory,
                                                                number, month, year, cvc, says, field):
    headphones, _, _ = catalog
    shop = shopper()
    customer = _signed_in(shop, make, catalog)
    shop.card(number, month=month, year=year, cvc=cvc)
    shop.place_order()
    shop.alert(says)
    expect(shop.page.get_by_role("group", name="Card").get_by_label(field, exact=True)).to_be_focused()
    shop.shot("refused")
    assert _orders_of(session_factory, customer.email) == 0  # nothing placed, no stock held
    assert make.stock_of(type(headphones), headphones.id) == 100


def test_a_card_the_provider_refuses_on_saving_places_no_order_then_another_card_pays(
        shopper, make, catalog, session_factory):
    headphones, _, _ = catalog
    shop = shopper()
    customer = _signed_in(shop, make, catalog)
    shop.card(DECLINED_ON_SAVING)
    shop.place_order()
    alert = shop.alert("Your card was declined.")  # the provider's reason
    expect(alert).to_be_focused()
    assert "No order was placed" in alert.inner_text()
    shop.shot("declined-on-saving")
    assert _orders_of(session_factory, customer.email) == 0
    assert make.stock_of(type(headphones), headphones.id) == 100
    shop.card(VISA)
    shop.place_order()
    shop.paid()
    assert _orders_of(session_factory, customer.email) == 1


def test_three_d_secure_is_explained_when_it_asks_twice_and_a_reload_keeps_waiting(shopper, make, catalog,
                                                                                   session_factory, real_stripe):
    shop = shopper()
    _signed_in(shop, make, catalog)
    shop.card(THREE_D_SECURE)
    shop.place_order()
    expect(shop.page.get_by_text("Checking your card with your bank")).to_be_in_viewport()
    shop.three_d_secure()  # saving the card
    shop.page.get_by_role("button", name="Complete authentication").wait_for()  # the payment's own prompt
    explained = shop.confirmation.get_by_text("confirm it is you once more")
    expect(explained).to_be_in_viewport()
    assert "the first time was for saving the card" in explained.inner_text()
    shop.shot("3ds-prompt")
    # Stripe is busy when the page calls PATCH /paid, and the webhook is late: the page must wait for it,
    # and go on waiting after a reload.
    real_stripe.webhooks_paused = True
    real_stripe.fail_next("GET /v1/payment_intents/{id}", status=429)
    shop.three_d_secure()
    shop.wait_for_confirmation("Waiting for the payment to be confirmed")
    shop.reload()
    shop.wait_for_confirmation("Waiting for the payment to be confirmed")
    shop.shot("reloaded-waiting")
    real_stripe.webhooks_paused = False
    order_id = shop.paid()
    order, events = _order(session_factory, order_id)
    assert order.payment_status == "paid" and events.count("payment_succeeded") == 1


def test_three_d_secure_failed_then_retried_is_paid(shopper, make, catalog, session_factory):
    shop = shopper()
    _signed_in(shop, make, catalog)
    shop.card(THREE_D_SECURE)
    shop.place_order()
    shop.three_d_secure()
    shop.three_d_secure(complete=False)
    alert = shop.alert("authentication failed")
    expect(alert).to_be_focused()
    expect(shop.confirmation).to_contain_text("Not paid: the last payment did not go through")
    shop.shot("3ds-failed")
    shop.card(THREE_D_SECURE)
    shop.page.get_by_role("button", name="Pay again").click()
    shop.three_d_secure()
    shop.three_d_secure()
    order_id = shop.paid()
    order, events = _order(session_factory, order_id)
    assert order.payment_status == "paid"
    assert events.count("payment_failed") == 1 and events.count("payment_succeeded") == 1


def test_declined_then_4242_is_paid_once(shopper, make, catalog, session_factory, stripe_emulator):
    shop = shopper()
    customer = _signed_in(shop, make, catalog)
    shop.card(DECLINED_ON_CHARGE)
    shop.place_order()
    alert = shop.alert("Your card was declined.")
    expect(alert).to_be_focused()
    order_id = shop.confirmation.locator("#confirmation-id").inner_text()
    shop.shot("declined")
    shop.card(VISA)
    shop.page.get_by_role("button", name="Pay again").click()
    assert shop.paid() == order_id  # the same order, paid
    assert _orders_of(session_factory, customer.email) == 1
    order, events = _order(session_factory, order_id)
    assert order.payment_status == "paid" and events.count("payment_succeeded") == 1
    assert events.count("payment_failed") == 1 and events.count("payment_intent_replaced") == 1
    charges = _succeeded_charges(stripe_emulator)
    assert [(c.amount, c.payment_intent) for c in charges] == [(order.total_cents, order.payment_intent_id)]


def test_declined_then_canceled_gives_the_stock_back(shopper, make, catalog, session_factory):
    headphones, _, _ = catalog
    shop = shopper()
    _signed_in(shop, make, catalog)
    shop.card(DECLINED_ON_CHARGE)
    shop.place_order()
    shop.alert("Your card was declined.")
    assert make.stock_of(type(headphones), headphones.id) == 99
    shop.page.get_by_role("button", name="Cancel order").click()
    confirmation = shop.wait_for_confirmation("Your order is canceled")
    expect(confirmation).to_contain_text("Canceled")
    expect(confirmation).to_be_in_viewport()
    shop.shot("canceled")
    order, _ = _order(session_factory, confirmation.locator("#confirmation-id").inner_text())
    assert order.status == "canceled"
    assert make.stock_of(type(headphones), headphones.id) == 100


def test_the_apis_refusal_is_said_in_a_shoppers_words_where_they_look(shopper, make, catalog, db, redis_stack):
    headphones, _, _ = catalog
    shop = shopper()
    customer = _signed_in(shop, make, catalog)
    from orders_service.catalog.models import Product

    with db.begin():  # the last ones sold meanwhile
        db.get(Product, headphones.id).stock = 0
    shop.page.get_by_role("radio", name="Cash on delivery").check()
    shop.place_order()
    alert = shop.alert("Premium Headphones is sold out")
    expect(alert).to_be_focused()
    shop.shot("sold-out")
    # The API itself still says it its own way, for integrations.
    token = requests.post(f"{redis_stack.url}/api/auth/login", timeout=10,
                          json={"email": customer.email, "password": PASSWORD}).json()["accessToken"]
    refused = requests.post(f"{redis_stack.url}/api/orders", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                            json=make.order_body(customer, catalog[2], [(headphones, 1)]))
    assert refused.json()["message"] == ("Product 'Premium Headphones' has insufficient stock. Available: 0, "
                                         "Requested: 1")


def test_a_field_the_api_refuses_is_named_and_focused(shopper, make, catalog):
    shop = shopper()
    _signed_in(shop, make, catalog)
    shop.deliver_to(zip_code="1000110001100011000110001")  # longer than any postal code
    shop.page.get_by_role("radio", name="Cash on delivery").check()
    shop.place_order()
    shop.alert("Check ZIP code: it can be at most 20 characters long.")
    expect(shop.page.get_by_label("ZIP code", exact=True)).to_be_focused()
    shop.shot("zip-refused")
