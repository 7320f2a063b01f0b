"""Prometheus metrics that add up across processes (prometheus-client's multiprocess mode).

Every process of a host (gunicorn workers, Celery workers) writes its samples to files in one
folder, and `/metrics` on any web worker reports the sum. prometheus-client picks that mode when it
is imported, from `PROMETHEUS_MULTIPROC_DIR`: the entry points set it first
(`runtime.prepare_process`). A process that never did (a test client, a CLI command) counts in
memory, alone. `orders-service dev` empties the folder on start; in production it belongs on a
tmpfs emptied at boot (docs/operations.md).
"""
from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

REQUESTS = Counter("orders_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"])
LATENCY = Histogram("orders_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
ORDERS_PLACED = Counter("orders_placed_total", "Orders placed", ["payment_method"])
PAYMENTS = Counter("orders_payments_total", "Payment state changes applied to orders, by outcome", ["outcome"])
WEBHOOK_EVENTS = Counter("orders_webhook_events_total", "Stripe webhook events received", ["type", "duplicate"])
REFUNDS_REFUSED = Counter("orders_refunds_refused_total",
                          "Refunds the payment provider refused, by what the service does next: retry (later), "
                          "stop (a person must act), none (an admin's refund, or one a refund made elsewhere "
                          "explains)", ["next"])
REFUNDS_NEEDING_ATTENTION = Gauge(
    "orders_refunds_needing_attention", "Closed orders still holding money because the provider refused their "
    "refund: retrying, or stopped (a person must act); as of the last reconciliation run", ["state"],
    multiprocess_mode="mostrecent")
GATE_WAIT = Histogram("orders_web_gate_wait_seconds", "Time a request waited for the web process's run gate",
                      buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
GATE_STALLS = Counter("orders_web_gate_stalls_total", "Requests that went past the run gate after waiting too long")
WEBHOOK_DELIVERIES = Counter("orders_webhook_deliveries_total",
                             "Outbound webhook delivery attempts, by the delivery's status after it "
                             "(succeeded, failed: to be retried, dead: no retry left)", ["outcome"])


def observe_gate_wait(seconds: float, admitted: bool) -> None:
    GATE_WAIT.observe(seconds)
    if not admitted:
        GATE_STALLS.inc()


def gauge_lines(gauges: dict[str, tuple[str, float]]) -> bytes:
    """Gauges read from the database when scraped (one value for the whole system, not summed over
    processes), as Prometheus text: {name: (help, value)}."""
    lines = []
    for name, (description, value) in gauges.items():
        lines += [f"# HELP {name} {description}", f"# TYPE {name} gauge", f"{name} {float(value)}"]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def render(gauges: dict[str, tuple[str, float]] | None = None) -> tuple[bytes, str]:
    """The text of /metrics: the processes' counters, then `gauges` (`gauge_lines`)."""
    if values.ValueClass is values.MutexValue:  # this process counts alone, in memory
        payload = generate_latest(REGISTRY)
    else:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        payload = generate_latest(registry)
    return payload + gauge_lines(gauges or {}), CONTENT_TYPE_LATEST
