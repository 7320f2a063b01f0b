"""Stripe's own addresses for a test browser: `https://js.stripe.com/v3/` serves the Stripe.js stand-in
(`tests/support/stripe_js/`, the Payment Element and `confirmPayment`), and `https://api.stripe.com/v1/…` reaches
the real-shaped Stripe (`RealStripe`) in front of localstripe.

The service, without the emulator, tells the page to load Stripe.js from Stripe (`GET /api/config`) and allows
only Stripe's origins in the storefront's Content-Security-Policy; the test browser has no internet. Routing those
two origins inside the browser (Playwright's `BrowserContext.route`) keeps the service exactly as in production:
no setting points it elsewhere, and the page runs under its real policy. The bank pages a redirect method sends
the customer to are the proxy's own (`RealStripe.redirect_url`), reached directly.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

STAND_IN = Path(__file__).resolve().parent / "stripe_js"
_TYPES = {".js": "application/javascript; charset=utf-8", ".html": "text/html; charset=utf-8"}


def route_stripe(context, stripe_url: str) -> None:
    """Point `context` (a Playwright BrowserContext) at the stand-in Stripe.js and at the Stripe API `stripe_url`."""

    def stripe_js(route):
        path = urlsplit(route.request.url).path
        name = "v3.js" if path.rstrip("/") == "/v3" else path.rsplit("/", 1)[-1]
        file = STAND_IN / name
        if not (file.parent == STAND_IN and file.is_file()):
            return route.fulfill(status=404, body="not part of the stand-in", content_type="text/plain")
        route.fulfill(body=file.read_text(), content_type=_TYPES[file.suffix],
                      headers={"Access-Control-Allow-Origin": "*"})

    def stripe_api(route):
        split = urlsplit(route.request.url)
        answer = route.fetch(url=f"{stripe_url}{split.path}{'?' + split.query if split.query else ''}")
        route.fulfill(response=answer)

    context.route("https://js.stripe.com/**", stripe_js)
    context.route("https://api.stripe.com/**", stripe_api)
