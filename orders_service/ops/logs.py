"""Logs: one JSON object per line for log collectors (the default), or lines for people (`LOG_FORMAT=text`).

Web, worker and beat log the same way. With `text` (what `orders-service dev` uses), the periodic jobs'
routine lines are quiet: Celery's own INFO lines about sending, receiving and finishing a task every
few seconds would bury everything else; its warnings and errors (a task that failed) still show.
"""
from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

# Celery's loggers for "task sent / received / succeeded": routine, for every tick of every job; and the
# Stripe SDK's two lines for every call it makes (the request's own line says what happened).
ROUTINE_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace", "stripe")
# Attributes every LogRecord has; anything else on a record was passed as `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class TextFormatter(logging.Formatter):
    """`12:00:01 INFO  orders_service.access  GET /api/products 200 3.1 ms` — what a person reads in a terminal."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-5s %(name)s  %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None}
        if record.name == "orders_service.access" and "path" in extra:
            record = logging.makeLogRecord(dict(vars(record), msg="%s %s %s %s ms", args=(
                extra.pop("method", ""), extra.pop("path"), extra.pop("status", ""), extra.pop("duration_ms", ""))))
        line = super().format(record)
        extra.pop("request_id", None)  # long, and only worth it when lines are searched, not read
        return line + ("  " + " ".join(f"{k}={v}" for k, v in extra.items()) if extra else "")


def configure_logging(level: int = logging.INFO, *filters: logging.Filter, fmt: str = "json") -> None:
    """Log lines on stdout in `fmt` (`json` or `text`); `filters` add fields to every record (the web's request)."""
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "text":
        handler.setFormatter(TextFormatter())
    else:
        handler.setFormatter(JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                                           rename_fields={"asctime": "time", "levelname": "level",
                                                          "name": "logger"}))
    for log_filter in filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if fmt == "text" else logging.NOTSET)
