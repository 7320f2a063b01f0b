"""Response headers for browsers: `nosniff` on everything, and a Content-Security-Policy for the pages
the service serves (`/api/docs`, the storefront under `/shop/`), set here, in one place, by path."""
from __future__ import annotations

from flask import Flask, request

from orders_service.config import Settings

# Both pages load only the service's own files: no inline script, nothing from another origin but Stripe.
_COMMON = ("default-src 'self'", "base-uri 'none'", "object-src 'none'", "frame-ancestors 'none'",
           "form-action 'self'", "img-src 'self' data:")


def content_security_policies(settings: Settings) -> dict[str, str]:
    """Path prefix → the policy of the pages under it."""
    stripe = settings.stripe_js_origins
    # Swagger UI sets style attributes as it renders; the storefront has no inline style at all.
    docs = [*_COMMON, "style-src 'self' 'unsafe-inline'", "script-src 'self'", "connect-src 'self'"]
    shop = [*_COMMON, "style-src 'self'",
            "script-src 'self' " + " ".join(stripe["script-src"]),
            "frame-src " + " ".join(stripe["frame-src"]),
            "connect-src 'self' " + " ".join(stripe["connect-src"])]
    return {"/api/docs": "; ".join(docs), "/shop": "; ".join(shop)}


def init_security_headers(app: Flask, settings: Settings) -> None:
    policies = content_security_policies(settings)

    @app.after_request
    def _security_headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        for prefix, policy in policies.items():
            if request.path == prefix or request.path.startswith(prefix + "/"):
                response.headers["Content-Security-Policy"] = policy
                break
        return response
