"""The reference storefront (docs/api.md, "The reference storefront") in a real browser: headless Chromium
driving /shop/ against the Procfile's web and worker, Stripe.js and the Stripe API of the emulator behind
RealStripe, webhooks on.

Every control is found by the accessible name that section gives it, as a person (or a screen reader) finds it.
Each step saves a screenshot; the folder is printed at the start of the module.
"""
from __future__ import annotations

import itertools
import shutil

import pytest
import requests
from sqlalchemy import func, select

from tests.support.factories import PASSWORD

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make test` installs it with "
                                                "apt): the storefront needs a real browser"),
    pytest.mark.slow,
    pytest.mark.xdist_group("redis_stack"),  # one stack (and one browser for the module) in one test process
]
VISA = "4242424242424242"
THREE_D_SECURE = "4000002500003155"
DECLINED_ON_CHARGE = "4000000000000341"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright's own browser download cannot work here: Debian's chromium, headless.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run",
            # A page the test fulfils itself (to add its CSP) has no address, so Chromium would count it as
            # public and refuse it the loopback Stripe; the service's own pages are loopback anyway.
            "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessRespectPreflightResults"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp("storefront-screenshots")
    line = f"storefront screenshots: {folder}"
    print(line)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    return folder


@pytest.fixture
def catalog(make):
    headphones = make.product("Premium Headphones", price_cents=199_99, stock=100)
    case = make.product("Phone Case", price_cents=29_99, stock=50,
                        variants=[{"name": "Black", "stock": 20}, {"name": "Clear", "stock": 20, "price_cents": 24_99}])
    method = make.delivery_method("Standard Shipping", price_cents=10_00, countries=())
    return headphones, case, method


class Shopper:
    """One customer in one browser context (fresh storage), taking screenshots as they go."""

    _steps = itertools.count(1)

    def __init__(self, browser, url: str, folder, name: str, stripe_js_url: str):
        self.context = browser.new_context(viewport={"width": 1100, "height": 900})
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda message: self.errors.append(message.text)
                     if "Content Security Policy" in message.text else None)
        self.context.route(f"{url}/shop/", self._with_csp(stripe_js_url))
        self.url, self.folder, self.name = url, folder, name

    @staticmethod
    def _with_csp(stripe_js_url: str):
        """The page is served under the strictest policy it claims to work with: 'self' and Stripe.js's origin,
        no inline script or style (another layer of the service sets the real header)."""
        stripe_origin = "/".join(stripe_js_url.split("/")[:3])
        policy = (f"default-src 'self'; script-src 'self' {stripe_origin}; connect-src 'self' {stripe_origin}; "
                  f"frame-src {stripe_origin}; style-src 'self'; img-src 'self' data:")

        def handle(route):
            response = route.fetch()
            route.fulfill(response=response, headers={**response.headers, "content-security-policy": policy})
        return handle

    def shot(self, step: str):
        path = self.folder / f"{next(self._steps):02d}-{self.name}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def open(self):
        self.page.goto(f"{self.url}/shop/")
        self._ready()
        self.shot("open")

    def reload(self):
        self.page.reload()
        self._ready()

    def _ready(self):
        try:
            self.page.locator("body[data-ready=true]").wait_for()
        except Exception:
            raise AssertionError(f"the page did not get ready: {self.errors}") from None

    def add_to_cart(self, product: str, variant: str | None = None):
        item = self.page.get_by_role("listitem").filter(has_text=product)
        if variant:
            item.get_by_label("Variant").select_option(label=variant)
        item.get_by_role("button", name="Add to cart").click()

    def checkout(self):
        self.page.get_by_role("region", name="Cart").get_by_role("button", name="Checkout").click()

    def account(self, email: str, password: str = PASSWORD, name: str | None = None):
        self.page.get_by_label("Email", exact=True).fill(email)
        self.page.get_by_label("Password", exact=True).fill(password)
        if name:
            self.page.get_by_label("Name", exact=True).fill(name)
            self.page.get_by_role("button", name="Create account").click()
        else:
            self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_text(f"Signed in as {email}").wait_for()

    def deliver_to(self, method: str = "Standard Shipping"):
        page = self.page
        page.get_by_label("Country", exact=True).fill("US")
        option = page.get_by_label("Delivery method").locator("option", has_text=method)
        page.get_by_label("Delivery method").select_option(option.get_attribute("value"))
        page.get_by_label("Street", exact=True).fill("123 Main St")
        page.get_by_label("City", exact=True).fill("New York")
        page.get_by_label("State", exact=True).fill("NY")
        page.get_by_label("ZIP code", exact=True).fill("10001")

    def card(self, number: str):
        """localstripe's card Element: five plain inputs inside the group `Card`."""
        self.page.get_by_role("radio", name="Pay online by card").check()
        card = self.page.get_by_role("group", name="Card")
        for placeholder, value in (("number", number), ("exp_month", "12"), ("exp_year", "34"), ("cvc", "123"),
                                   ("postal_code", "10001")):
            card.get_by_placeholder(placeholder, exact=True).fill(value)

    def place_order(self, double_click: bool = False):
        button = self.page.get_by_role("button", name="Place order")
        button.dblclick() if double_click else button.click()

    def three_d_secure(self, complete: bool = True):
        """The emulator's 3-D Secure prompt (Stripe.js shows Stripe's own with real Stripe)."""
        name = "Complete authentication" if complete else "Fail authentication"
        self.page.get_by_role("button", name=name).click()

    @property
    def confirmation(self):
        return self.page.get_by_role("region", name="Order confirmation")

    def wait_for_confirmation(self, text: str):
        self.confirmation.get_by_text(text).first.wait_for()
        return self.confirmation

    def paid(self) -> str:
        """Waits until the page shows the order paid; the order id it shows."""
        self.confirmation.get_by_text("confirmed (paid)").wait_for(timeout=30_000)
        self.shot("paid")
        return self.confirmation.locator("#confirmation-id").inner_text()

    def close(self):
        assert self.errors == []  # the page threw nothing
        self.context.close()


@pytest.fixture
def shopper(browser, redis_webhooks_on, screenshots, request):
    opened = []
    stripe_js_url = requests.get(f"{redis_webhooks_on.url}/api/config", timeout=10).json()["stripeJsUrl"]

    def open_shop(name: str | None = None) -> Shopper:
        shopper = Shopper(browser, redis_webhooks_on.url, screenshots, name or request.node.name.removeprefix("test_"),
                          stripe_js_url)
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


def test_cash_on_delivery_then_my_orders_shows_the_tracking_number(shopper, make, catalog, session_factory,
                                                                   redis_stack):
    shop = shopper()
    shop.add_to_cart("Premium Headphones")
    shop.add_to_cart("Phone Case", variant="Clear — $24.99")
    cart = shop.page.get_by_role("region", name="Cart")
    assert "1 × Phone Case (Clear)" in cart.inner_text()
    shop.checkout()
    email = "cash-buyer@example.com"
    shop.account(email, password="a long enough password", name="Cash Buyer")  # Create account
    shop.deliver_to()
    shop.page.get_by_role("radio", name="Cash on delivery").check()
    shop.shot("checkout")
    shop.place_order(double_click=True)  # a double click places one order (one Idempotency-Key)
    confirmation = shop.wait_for_confirmation("confirmed (unpaid)")
    assert "$234.98" in confirmation.inner_text()  # 199.99 + 24.99 + 10.00 delivery
    shop.shot("confirmed")
    order_id = confirmation.locator("#confirmation-id").inner_text()
    assert _orders_of(session_factory, email) == 1

    _, admin = make.admin()
    shipped = requests.patch(f"{redis_stack.url}/api/admin/orders/{order_id}", headers=admin, timeout=10,
                             json={"status": "shipped", "trackingNumber": "1Z999AA10123456784", "carrier": "UPS"})
    assert shipped.status_code == 200, shipped.text
    shop.page.get_by_role("button", name="My orders").click()
    orders = shop.page.get_by_role("region", name="My orders")
    orders.get_by_text("1Z999AA10123456784").wait_for()
    assert "shipped" in orders.inner_text() and order_id in orders.inner_text()
    shop.shot("my-orders")


def test_card_4242_is_paid(shopper, make, catalog, session_factory):
    shop = shopper()
    _signed_in(shop, make, catalog)
    shop.card(VISA)
    shop.shot("card")
    shop.place_order()
    order_id = shop.paid()
    order, events = _order(session_factory, order_id)
    assert (order.status, order.payment_status, order.total_cents) == ("confirmed", "paid", 209_99)
    assert events.count("payment_succeeded") == 1


def test_three_d_secure_completed_is_paid_and_a_reload_keeps_waiting_for_it(shopper, make, catalog, session_factory,
                                                                            real_stripe):
    shop = shopper()
    _signed_in(shop, make, catalog)
    shop.card(THREE_D_SECURE)
    shop.place_order()
    shop.three_d_secure()  # saving the card
    shop.page.get_by_role("button", name="Complete authentication").wait_for()  # the payment's own prompt
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
    shop.confirmation.get_by_text("failed authentication").wait_for()
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
    shop.confirmation.get_by_text("Your card was declined").wait_for()
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


def test_the_apis_error_is_shown(shopper, make, catalog, db):
    headphones, _, _ = catalog
    shop = shopper()
    _signed_in(shop, make, catalog)
    from orders_service.catalog.models import Product

    with db.begin():  # the last ones sold meanwhile
        db.get(Product, headphones.id).stock = 0
    shop.page.get_by_role("radio", name="Cash on delivery").check()
    shop.place_order()
    alert = shop.page.get_by_role("alert").filter(has_text="insufficient stock")
    alert.wait_for()
    assert "Product 'Premium Headphones' has insufficient stock. Available: 0, Requested: 1" in alert.inner_text()
    shop.shot("insufficient-stock")
