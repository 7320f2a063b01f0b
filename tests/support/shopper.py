"""A shopper in a real browser (headless Chromium, Debian's): the storefront's browser tests use it as a person
uses the page. Every control is found by its accessible name (as a screen reader finds it), what is typed is
typed key by key, and what the page says is read where the shopper is looking, in the shopper's words. Each
step can save a screenshot (`shot`); `close` checks that the page threw nothing and never spoke like a developer."""
from __future__ import annotations

import itertools
import re
import shutil

from playwright.sync_api import expect

from tests.support.factories import PASSWORD
from tests.support.stripe_js import route_stripe

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
    # A page the test fulfils itself (to add its CSP) has no address, so Chromium would count it as
    # public and refuse it the loopback Stripe; the service's own pages are loopback anyway.
    "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessRespectPreflightResults"]
# What a shopper should never have to read: the API's and the provider's words for developers.
DEVELOPER_WORDS = re.compile(r"PaymentIntent|PaymentMethod|requires_\w+|Length must be|\((?:un)?paid\)|\(failed\)|"
                             r"\bpending\b|cash_on_delivery|Bad request|undefined|\bnull\b|NaN|\[object",
                             re.IGNORECASE)


class Shopper:
    """One customer in one browser context (fresh storage), taking screenshots as they go.

    `stripe_js_url`: the page is served under a policy of its own that allows Stripe.js's origin (the emulator's
    Stripe.js). `stripe_url`: Stripe's own addresses reach the Stripe.js stand-in and that Stripe API instead
    (tests/support/stripe_js.py), and the page keeps the service's own policy."""

    _steps = itertools.count(1)

    def __init__(self, browser, url: str, folder, name: str, stripe_js_url: str | None = None,
                 stripe_url: str | None = None):
        self.context = browser.new_context(viewport={"width": 1100, "height": 800})
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.said: list[str] = []  # every text the page showed, read at each screenshot
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda message: self.errors.append(message.text)
                     if "Content Security Policy" in message.text else None)
        if stripe_js_url:
            self.context.route(f"{url}/shop/", self._with_csp(stripe_js_url))
        if stripe_url:
            route_stripe(self.context, stripe_url)
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
        self.said.append(self.page.locator("body").inner_text())
        return path

    def open(self, path: str = "/shop/"):
        self.page.goto(f"{self.url}{path}")
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

    @property
    def cart(self):
        return self.page.get_by_role("region", name="Cart")

    def add_to_cart(self, product: str, variant: str | None = None):
        item = self.page.get_by_role("listitem").filter(has_text=product)
        if variant:
            item.get_by_label("Variant").select_option(label=variant)
        item.get_by_role("button", name="Add to cart").click()

    def checkout(self):
        self.cart.get_by_role("button", name="Checkout").click()

    def account(self, email: str, password: str = PASSWORD, name: str | None = None):
        self.page.get_by_label("Email", exact=True).fill(email)
        self.page.get_by_label("Password", exact=True).fill(password)
        if name:
            self.page.get_by_label("Name", exact=True).fill(name)
            self.page.get_by_role("button", name="Create account").click()
        else:
            self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_text(f"Signed in as {email}").wait_for()

    def deliver_to(self, method: str = "Standard Shipping", zip_code: str = "10001"):
        page = self.page
        page.get_by_label("Country", exact=True).fill("US")
        option = page.get_by_label("Delivery method").locator("option", has_text=method)
        page.get_by_label("Delivery method").select_option(option.get_attribute("value"))
        page.get_by_label("Street", exact=True).fill("123 Main St")
        page.get_by_label("City", exact=True).fill("New York")
        page.get_by_label("State", exact=True).fill("NY")
        page.get_by_label("ZIP code", exact=True).fill(zip_code)

    def card(self, number: str, month: str = "12", year: str = "34", cvc: str = "123"):
        """Types the card as a person does: into each field of the group `Card`, key by key, as printed."""
        online = self.page.get_by_role("radio", name="Pay online by card")
        if online.is_visible():  # paying an order again, the page asks for the card only
            online.check()
        card = self.page.get_by_role("group", name="Card")
        for label, value in (("Card number", number), ("Expiry month", month), ("Expiry year", year),
                             ("Security code", cvc), ("Card postal code", "10001")):
            self.type_into(card.get_by_label(label, exact=True), value)

    def type_into(self, field, value: str):
        """Click the field, clear it as a person does (select all, delete), type key by key."""
        field.click()
        field.press("Control+A")
        field.press("Backspace")
        self.page.keyboard.type(value)

    def place_order(self, double_click: bool = False):
        button = self.page.get_by_role("button", name="Place order")
        button.dblclick() if double_click else button.click()

    def three_d_secure(self, complete: bool = True):
        """The emulator's 3-D Secure prompt (Stripe.js shows Stripe's own with real Stripe)."""
        name = "Complete authentication" if complete else "Fail authentication"
        button = self.page.get_by_role("button", name=name)
        expect(button).to_be_in_viewport()  # the prompt is where the shopper is looking, however far they scrolled
        button.click()

    @property
    def confirmation(self):
        return self.page.get_by_role("region", name="Order confirmation")

    def wait_for_confirmation(self, text: str):
        self.confirmation.get_by_text(text).first.wait_for()
        return self.confirmation

    def alert(self, text: str):
        """An error the page shows: visible where the shopper is looking, and focused (or its field is)."""
        alert = self.page.get_by_role("alert").filter(has_text=text)
        alert.wait_for()
        expect(alert).to_be_in_viewport()
        return alert

    def paid(self) -> str:
        """Waits until the page shows the order paid; the order id it shows."""
        self.confirmation.get_by_text("Confirmed and paid").wait_for(timeout=30_000)
        self.shot("paid")
        return self.confirmation.locator("#confirmation-id").inner_text()

    def close(self):
        assert self.errors == []  # the page threw nothing
        self.said.append(self.page.locator("body").inner_text())
        for text in self.said:
            assert not DEVELOPER_WORDS.search(text), DEVELOPER_WORDS.search(text).group(0) + " in: " + text
        self.context.close()
