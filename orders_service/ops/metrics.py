"""Prometheus metrics that add up across processes (prometheus-client's multiprocess mode).

Every process of a host (gunicorn workers, Celery workers) writes its samples to files in one
folder, and `/metrics` on any web worker reports the sum. The folder must be set before
prometheus_client is imported, hence this module's first lines; `orders-service dev` empties it on
start, and in production it belongs on a tmpfs emptied at boot (docs/operations.md).
"""
from __future__ import annotations

import os

from orders_service.config import METRICS_DIR

os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
METRICS_DIR.mkdir(parents=True, exist_ok=True)

from prometheus_client import (  # noqa: E402  (after the folder is chosen)
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("orders_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"])
LATENCY = Histogram("orders_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
ORDERS_PLACED = Counter("orders_placed_total", "Orders placed", ["payment_method"])
PAYMENTS = Counter("orders_payments_total", "Payment state changes applied to orders, by outcome", ["outcome"])
WEBHOOK_EVENTS = Counter("orders_webhook_events_total", "Stripe webhook events received", ["type", "duplicate"])


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST
