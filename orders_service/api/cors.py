"""CORS: pages on the origins of CORS_ORIGINS may call /api from a browser; any other origin gets no CORS
headers at all."""
from __future__ import annotations

import re

from flask import Flask, request
from flask_cors import CORS

# What a page on a listed origin may send and read.
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key"]
EXPOSED_HEADERS = ["Location", "X-Request-ID"]


def exactly(origin: str) -> re.Pattern:
    """The origin as a pattern that matches it and nothing else: flask-cors reads a string holding `*`, `?`,
    `[`, `$`… as an unanchored regular expression (an IPv6 origin's brackets included), never as itself."""
    return re.compile(re.escape(origin) + r"\Z", re.IGNORECASE)


def init_cors(app: Flask, origins: tuple[str, ...]) -> None:
    @app.after_request
    def _route_methods_only(response):
        # flask-cors offers every method in a preflight; the API offers the route's own (Flask's
        # automatic OPTIONS answer lists them in Allow). Registered first, so it runs after flask-cors.
        if request.method == "OPTIONS" and "Access-Control-Allow-Methods" in response.headers \
                and response.headers.get("Allow"):
            response.headers["Access-Control-Allow-Methods"] = response.headers["Allow"]
        return response

    CORS(app, resources={r"/api/*": {"origins": [exactly(origin) for origin in origins]}},
         allow_headers=ALLOWED_HEADERS, expose_headers=EXPOSED_HEADERS, supports_credentials=False, max_age=600)
