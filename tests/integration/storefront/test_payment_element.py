"""The storefront without the emulator, in a real browser: Stripe's Payment Element and `confirmPayment`, against
the Procfile's web and worker in Stripe's own API mode (`STRIPE_EMULATOR=false`, the Dashboard's payment methods)
and the real-shaped Stripe in front of localstripe, with its signed webhooks.

The browser reaches Stripe at Stripe's addresses: `js.stripe.com` serves the Stripe.js stand-in (the Payment
Element in its iframe) and `api.stripe.com` the real-shaped Stripe, routed inside the browser
(tests/support/stripe_js.py), so the page runs under the service's own Content-Security-Policy. A bank's page
(iDEAL) is the real-shaped Stripe's test page. The shopper types as a person types, into the Payment Element by
its labels, and reads the outcome in `Order confirmation`, where they are looking.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from orders_service.catalog.models import Product
from orders_service.orders.models import Order, OrderEvent
from tests.support.orders import fresh_order
from tests.support.processes import Stack, wait_until
from tests.support.shopper import CHROMIUM, Shopper
from tests.support.stripe import WEBHOOK_SECRET

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make test` installs it with "
                                                "apt): the storefront needs a real browser"),
    pytest.mark.slow,
    pytest.mark.xdist_group("payment_element_stack"),  # one stack and one browser for the module, in one process
]
VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"  # Stripe's test card for a generic decline
THREE_D_SECURE = "4000 0025 0000 3155"  # Stripe's test card that asks for 3-D Secure
IBAN = "DE89 3704 0044 0532 0130 00"  # Stripe's test IBAN, as a bank statement prints it
GET_PI = "GET /v1/payment_intents/{id}"


@pytest.fixture(scope="module")
def stripe_stack(base_env, redis_broker_url):
    """web + worker as against Stripe itself (no emulator: the Payment Element, the Dashboard's methods), a
    euro shop (SEPA debits and iDEAL take euros), on a Redis database of their own."""
    env = dict(base_env, STRIPE_EMULATOR="false", STORE_CURRENCY="EUR",
               CELERY_BROKER_URL=redis_broker_url.rsplit("/", 1)[0] + "/4")
    env.pop("STRIPE_PAYMENT_METHODS", None)  # the default with Stripe's own API: automatic
    running = Stack(env)
    yield running
    running.close()


@pytest.fixture
def stack(stripe_stack, real_stripe):
    """The stack, with Stripe's webhooks (real-shaped, signed) going to its web while the test runs."""
    with real_stripe.webhooks_to(stripe_stack.url, WEBHOOK_SECRET):
        yield stripe_stack


@pytest.fixture
def shopper(browser, stack, real_stripe, screenshots, request):
    opened = []

    def open_shop(path: str = "/shop/") -> PaymentShopper:
        name = re.sub(r"\W+", "-", request.node.name.removeprefix("test_")).strip("-")
        shopper = PaymentShopper(browser, stack.url, screenshots, name, stripe_url=real_stripe.url)
        opened.append(shopper)
        shopper.open(path)
        return shopper

    yield open_shop
    for shopper in opened:
        shopper.close()


class PaymentShopper(Shopper):
    """A shopper paying with the Payment Element (the fields of Stripe's iframe, inside the group `Card`)."""

    @property
    def payment_element(self):
        return self.page.get_by_role("group", name="Card").frame_locator("iframe[title='Secure payment input frame']")

    def order_online(self, make, *products):
        """Cart, account, address, `Pay online by card`, `Place order`: the order is placed, the Payment Element
        asks how to pay. The customer."""
        customer = make.customer()
        for product in products or ("Premium Headphones",):
            self.add_to_cart(product)
        self.checkout()
        self.account(customer.email)
        self.deliver_to()
        self.page.get_by_role("radio", name="Pay online by card").check()
        self.place_order()
        self.payment_element.get_by_label("Card number").wait_for()
        return customer

    def pay_with(self, method: str, button: str = "Pay now", **typed):
        """Chooses `method` in the Payment Element, types each field (`typed`: label -> text), presses `button`."""
        element = self.payment_element
        element.get_by_role("radio", name=method, exact=True).check()
        for label, text in typed.items():
            field = element.get_by_label(label, exact=True)
            if field.evaluate("node => node.tagName") == "SELECT":
                field.select_option(label=text)
            else:
                self.type_into(field, text)
        self.shot(f"{method.lower().replace(' ', '-')}-typed")
        self.page.get_by_role("button", name=button).click()

    def pay_by_card(self, number: str = VISA, button: str = "Pay now"):
        self.pay_with("Card", button, **{"Card number": number, "Expiration date": "12 / 34", "Security code": "123",
                                         "ZIP code": "10001"})

    @property
    def order_id(self) -> str:
        return self.confirmation.locator("#confirmation-id").inner_text()

    def status(self) -> str:
        return self.confirmation.locator("#confirmation-status").inner_text()


def _order(db, order_id) -> Order:
    return fresh_order(db, order_id)


def _events(db, order_id) -> list[tuple[str, str | None]]:
    with db.begin():
        return [(e.type, (e.detail or {}).get("source")) for e in db.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.at))]


def _address(shop) -> tuple[str, dict]:
    split = urlsplit(shop.page.url)
    return split.path, parse_qs(split.query)


def test_the_page_runs_under_the_services_own_policy_with_stripe_js_from_stripe(shopper, stack, make, catalog):
    shop = shopper()
    policy = shop.page.request.get(f"{stack.url}/shop/").headers["content-security-policy"]
    assert "script-src 'self' https://js.stripe.com" in policy and "https://api.stripe.com" in policy
    shop.add_to_cart("Premium Headphones")
    shop.checkout()
    shop.account(make.customer().email)
    note = shop.page.get_by_role("group", name="Card").get_by_text("Once your order is placed you pay here")
    expect(note).to_be_visible()  # before the order, the group Card says when it asks


def test_a_card_is_paid_on_the_page_and_a_reload_before_and_after_finds_the_order(shopper, make, catalog, db):
    headphones, _, _ = catalog
    shop = shopper()
    shop.order_online(make)
    order_id = shop.order_id
    assert _address(shop) == ("/shop/", {"order": [order_id]})  # a reload, or a bank's page, comes back to it
    expect(shop.page.get_by_role("button", name="Pay now")).to_be_in_viewport()
    assert shop.status() == "Waiting for your payment"
    assert make.stock_of(Product, headphones.id) == 99  # placed: its stock is held while it is paid
    shop.shot("placed")
    expect(shop.payment_element.get_by_label("Card number")).to_be_in_viewport()

    shop.reload()  # mid-payment: the order is found again from the address, its client secret from the service
    shop.payment_element.get_by_label("Card number").wait_for()
    assert shop.order_id == order_id
    shop.page.evaluate("window.stillThisPage = true")
    shop.pay_by_card(VISA)
    assert shop.paid() == order_id
    assert shop.page.evaluate("window.stillThisPage") is True  # paid without leaving the page (no redirect)
    expect(shop.confirmation.get_by_text("Thank you: your payment was received")).to_be_in_viewport()
    expect(shop.page.get_by_role("button", name="Pay now")).to_be_hidden()
    order = _order(db, order_id)
    assert (order.status, order.payment_status, order.payment_method_type) == ("confirmed", "paid", "card")
    assert [t for t, _ in _events(db, order_id)].count("payment_succeeded") == 1

    shop.reload()  # any reload of the address shows the order as the service has it: paid
    shop.wait_for_confirmation("Confirmed and paid")
    assert shop.order_id == order_id


def test_a_sepa_debit_is_processing_until_the_bank_pays_then_my_orders_shows_it_paid(shopper, make, catalog, db,
                                                                                       real_stripe):
    headphones, _, _ = catalog
    shop = shopper()
    customer = shop.order_online(make)
    order_id = shop.order_id
    shop.pay_with("SEPA Debit", **{"Full name": "Jenny Rosen", "Email": customer.email, "IBAN": IBAN})

    confirmation = shop.wait_for_confirmation("Payment processing")
    expect(confirmation).to_be_in_viewport()
    assert "Payment processing" in shop.status()
    assert "can take a few days" in confirmation.inner_text()
    shop.shot("processing")
    order = _order(db, order_id)
    assert (order.status, order.payment_status, order.payment_method_type) == ("pending", "processing", "sepa_debit")
    assert make.stock_of(Product, headphones.id) == 99
    pi = real_stripe.payment_intent(order.payment_intent_id, expand=("payment_method",))
    assert pi["payment_method"]["sepa_debit"]["last4"] == "3000"  # the IBAN as typed, with its spaces
    assert pi["payment_method"]["billing_details"]["name"] == "Jenny Rosen"

    real_stripe.succeed(order.payment_intent_id)  # days later, the bank pays: Stripe's signed event
    wait_until(lambda: _order(db, order_id).payment_status == "paid", timeout=20)
    shop.page.get_by_role("button", name="My orders").click()
    entry = shop.page.get_by_role("region", name="My orders").get_by_role("listitem").filter(has_text=order_id)
    expect(entry).to_contain_text("Confirmed and paid")
    expect(entry).to_be_in_viewport()
    shop.shot("my-orders-paid")
    assert ("payment_succeeded", "webhook") in _events(db, order_id)


def test_a_declined_card_is_said_and_the_same_order_is_paid_again_after_a_reload(shopper, make, catalog, db,
                                                                                   real_stripe):
    shop = shopper()
    shop.order_online(make)
    order_id = shop.order_id
    pi_id = _order(db, order_id).payment_intent_id
    shop.pay_by_card(DECLINED)

    alert = shop.alert("Your card was declined.")
    expect(alert).to_be_focused()
    assert "Nothing was charged" in alert.inner_text()
    assert shop.status() == "Not paid: the last payment did not go through"
    shop.shot("declined")
    # The decline is the service's (GET …/payment), not the browser's: a reload says it again.
    shop.reload()
    shop.alert("Your card was declined.")
    expect(shop.page.get_by_role("button", name="Pay again")).to_be_visible()

    shop.pay_by_card(VISA, button="Pay again")
    assert shop.paid() == order_id
    order = _order(db, order_id)
    assert order.payment_status == "paid" and order.payment_intent_id == pi_id  # the same PaymentIntent, paid
    types = [t for t, _ in _events(db, order_id)]
    assert types.count("payment_failed") == 1 and types.count("payment_succeeded") == 1
    assert real_stripe.payment_intent(pi_id)["status"] == "succeeded"


def test_three_d_secure_failed_then_completed_pays_the_same_order_on_the_page(shopper, make, catalog, db):
    shop = shopper()
    shop.order_online(make)
    order_id = shop.order_id
    shop.pay_by_card(THREE_D_SECURE)
    prompt = shop.page.get_by_role("dialog", name="3D Secure authentication")
    expect(prompt).to_be_in_viewport()
    shop.shot("3ds-prompt")
    prompt.get_by_role("button", name="Fail authentication").click()
    alert = shop.alert("The payment was not confirmed at your bank")
    expect(alert).to_be_focused()
    assert _order(db, order_id).payment_status == "failed"

    shop.page.get_by_role("button", name="Pay again").click()  # the same card, typed already: asked again
    prompt.get_by_role("button", name="Complete authentication").click()
    assert shop.paid() == order_id
    types = [t for t, _ in _events(db, order_id)]
    assert types.count("payment_failed") == 1 and types.count("payment_succeeded") == 1
    assert "payment_intent_replaced" not in types  # Stripe lets the same PaymentIntent be confirmed again


def test_a_field_left_incomplete_is_said_in_the_group_card_and_nothing_is_sent(shopper, make, catalog, db,
                                                                                real_stripe):
    shop = shopper()
    shop.order_online(make)
    confirms = real_stripe.count("POST /v1/payment_intents/{id}/confirm")
    shop.pay_with("Card", **{"Card number": "4242 4242 4242", "Expiration date": "12 / 34", "Security code": "123",
                             "ZIP code": "10001"})
    alert = shop.alert("Your card number is incomplete.")
    expect(shop.page.get_by_role("group", name="Card")).to_contain_text("Your card number is incomplete.")
    assert alert.is_visible()
    shop.shot("incomplete")
    assert real_stripe.count("POST /v1/payment_intents/{id}/confirm") == confirms
    assert _order(db, shop.order_id).payment_status == "unpaid"


def _pay_at_the_bank(shop, outcome: str) -> dict:
    """iDEAL: the Payment Element leaves for the bank's page; the shopper answers there and comes back to the
    shop. The address they came back to (its query)."""
    order_id = shop.order_id
    with shop.page.expect_navigation(url=re.compile(r"/_real_stripe/redirect/")):
        shop.pay_with("iDEAL", **{"iDEAL Bank": "ING"})
    shop.page.get_by_role("heading", name="Test payment").wait_for()
    shop.shot("bank-page")
    with shop.page.expect_request(lambda r: r.is_navigation_request() and "/shop/?order=" in r.url) as back:
        shop.page.get_by_role("button", name=outcome).click()
    shop._ready()
    returned = parse_qs(urlsplit(back.value.url).query)
    assert returned["order"] == [order_id] and returned["payment_intent"][0].startswith("pi_")
    assert _address(shop) == ("/shop/", {"order": [order_id]})  # Stripe's parameters (a client secret) taken off
    return returned


def test_a_bank_redirect_authorized_at_the_bank_is_paid_on_return(shopper, make, catalog, db):
    shop = shopper()
    shop.order_online(make)
    order_id = shop.order_id
    returned = _pay_at_the_bank(shop, "Authorize Test Payment")
    assert returned["redirect_status"] == ["succeeded"]
    assert shop.paid() == order_id
    expect(shop.confirmation).to_be_in_viewport()
    order = _order(db, order_id)
    assert (order.payment_status, order.payment_method_type) == ("paid", "ideal")
    assert [t for t, _ in _events(db, order_id)].count("payment_succeeded") == 1


def test_a_bank_redirect_failed_at_the_bank_is_said_and_a_card_pays_the_order(shopper, make, catalog, db):
    shop = shopper()
    shop.order_online(make)
    order_id = shop.order_id
    returned = _pay_at_the_bank(shop, "Fail Test Payment")
    assert returned["redirect_status"] == ["failed"]
    alert = shop.alert("The payment was not confirmed at your bank")
    expect(alert).to_be_focused()
    assert shop.status() == "Not paid: the last payment did not go through"
    shop.shot("failed-at-the-bank")
    assert _order(db, order_id).payment_status == "failed"

    shop.pay_by_card(VISA, button="Pay again")
    assert shop.paid() == order_id
    assert _order(db, order_id).payment_method_type == "card"


def test_a_return_whose_redirect_status_lies_shows_the_order_as_the_provider_has_it(shopper, make, catalog, db,
                                                                                     real_stripe):
    shop = shopper()
    shop.order_online(make)
    order_id = shop.order_id
    shop.pay_by_card(DECLINED)
    shop.alert("Your card was declined.")
    order = _order(db, order_id)
    secret = order.client_secret
    asked = real_stripe.count(GET_PI)

    # An address saying the payment succeeded (typed, shared, or a bank's page gone wrong).
    shop.open(f"/shop/?order={order_id}&payment_intent={order.payment_intent_id}"
              f"&payment_intent_client_secret={secret}&redirect_status=succeeded")
    alert = shop.alert("Your card was declined.")
    assert "Nothing was charged" in alert.inner_text()
    assert shop.status() == "Not paid: the last payment did not go through"
    expect(shop.confirmation.get_by_text("Confirmed and paid")).to_have_count(0)
    assert real_stripe.count(GET_PI) > asked  # the page made the service ask Stripe (PATCH …/paid)
    assert _order(db, order_id).payment_status == "failed"
    shop.shot("lying-return")


def test_a_return_in_a_browser_that_forgot_the_sign_in_asks_for_it_then_shows_the_order(shopper, make, catalog):
    shop = shopper()
    customer = shop.order_online(make)
    order_id = shop.order_id
    shop.pay_by_card(VISA)
    shop.paid()

    elsewhere = shopper(f"/shop/?order={order_id}&payment_intent=pi_x&redirect_status=succeeded")
    alert = elsewhere.alert("Sign in to see your order")
    expect(elsewhere.page.get_by_label("Email", exact=True)).to_be_focused()
    assert alert.is_visible()
    elsewhere.account(customer.email)
    assert elsewhere.paid() == order_id
