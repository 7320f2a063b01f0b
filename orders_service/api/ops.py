"""Liveness, readiness and metrics: plain Flask routes, outside the OpenAPI document (for balancers and Prometheus)."""
import hmac

from flask import Blueprint, request
from sqlalchemy import text

from orders_service.api.context import runtime, settings, task_queue
from orders_service.api.errors import error_response
from orders_service.ops import metrics
from orders_service.webhooks import deliveries

blp = Blueprint("ops", __name__)


@blp.get("/healthz")
def healthz():
    return {"status": "ok"}


def _database_ok() -> bool:
    try:
        with runtime().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # any driver or network error means "not ready"
        return False


@blp.get("/readyz")
def readyz():
    checks = {"database": _database_ok(), "broker": task_queue().reachable()}
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not ready",
            "checks": {name: "ok" if ok else "unreachable" for name, ok in checks.items()}}
    return body, 200 if ready else 503


@blp.get("/metrics")
def prometheus_metrics():
    token = settings().metrics_token
    if token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(),
                                         f"Bearer {token}".encode()):
        response, status = error_response(401, "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response, status
    payload, content_type = metrics.render(_webhook_gauges())
    return payload, 200, {"Content-Type": content_type}


def _webhook_gauges() -> dict:
    """The outbound webhooks' backlog, read from the database (the same on every host); none if it is away."""
    try:
        with runtime().session_factory() as session:
            backlog = deliveries.backlog(session)
    except Exception:  # the database away: /metrics still answers with the processes' counters
        return {}
    return {
        "orders_webhook_deliveries_waiting": (
            "Outbound webhook deliveries still to make to active endpoints (pending, or failed and to be retried)",
            backlog.waiting),
        "orders_webhook_oldest_pending_delivery_age_seconds": (
            "Age of the oldest outbound webhook delivery still to make (0: none)", backlog.oldest_age_seconds),
        "orders_webhook_oldest_unnumbered_event_age_seconds": (
            "Age of the oldest order event not yet numbered for the feed and its deliveries (seconds while the "
            "webhook senders run; growing: none runs)", backlog.unnumbered_age_seconds),
    }
