"""Per-request logs and metrics: one JSON line per request, with the request id and the order id."""
from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, has_request_context, request

from orders_service.ops import metrics

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("orders_service.access")


class RequestContext(logging.Filter):
    """Adds `request_id` and `order_id` to records logged while a request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = getattr(g, "request_id", None)
            record.order_id = getattr(g, "order_id", None) or (request.view_args or {}).get("order_id")
        return True


def init_request_logging(app: Flask) -> None:
    @app.before_request
    def _start():
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def _finish(response):
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        metrics.REQUESTS.labels(request.method, route, response.status_code).inc()
        metrics.LATENCY.labels(request.method, route).observe(elapsed)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        access_log.info("request", extra={"method": request.method, "path": request.path,
                                          "status": response.status_code, "duration_ms": round(elapsed * 1000, 2)})
        return response
