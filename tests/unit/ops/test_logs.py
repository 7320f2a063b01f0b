"""Log lines: JSON for collectors by default, lines for people with LOG_FORMAT=text (what `make run` uses)."""
import json
import logging

import pytest

from orders_service.ops.logs import configure_logging


@pytest.fixture
def logs(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def configure(fmt):
        configure_logging(logging.INFO, fmt=fmt)
        return lambda: capsys.readouterr().out.splitlines()

    yield configure
    configure_logging(logging.INFO)  # Celery's and Stripe's loggers back at the levels JSON leaves them
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_text_lines_are_for_people_and_quiet_about_routine_ticks(logs):
    read = logs("text")
    logging.getLogger("orders_service.access").info("request", extra={
        "method": "GET", "path": "/api/products", "status": 200, "duration_ms": 3.1, "request_id": "abc"})
    logging.getLogger("orders_service.payments.reconcile").info("reconciled", extra={"orders": 2})
    logging.getLogger("celery.beat").info("Scheduler: Sending due task send_notifications")
    logging.getLogger("celery.app.trace").info("Task send_notifications succeeded in 0.01s")
    logging.getLogger("celery.app.trace").error("Task reconcile_payments raised: boom")
    lines = read()
    assert len(lines) == 3, lines
    assert lines[0].endswith("INFO  orders_service.access  GET /api/products 200 3.1 ms")
    assert lines[1].endswith("orders_service.payments.reconcile  reconciled  orders=2")
    assert "ERROR" in lines[2] and "boom" in lines[2]
    assert not any(line.startswith("{") for line in lines)


def test_json_is_the_default_and_keeps_every_line(logs):
    read = logs("json")
    logging.getLogger("celery.beat").info("Scheduler: Sending due task send_notifications")
    logging.getLogger("orders_service.access").info("request", extra={"path": "/healthz", "status": 200})
    first, second = (json.loads(line) for line in read())
    assert first["logger"] == "celery.beat" and first["level"] == "INFO"
    assert (second["path"], second["status"]) == ("/healthz", 200)
