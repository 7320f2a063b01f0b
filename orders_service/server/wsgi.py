"""The WSGI entry point for gunicorn (Procfile `web`): the app behind the run gate."""
from orders_service.config import Settings
from orders_service.runtime import prepare_process

settings = Settings.from_env()
prepare_process(settings)  # before the app's imports: prometheus-client reads its folder when imported

import logging  # noqa: E402

from orders_service.api.request_log import RequestContext  # noqa: E402
from orders_service.app import create_app  # noqa: E402
from orders_service.ops import metrics  # noqa: E402
from orders_service.ops.logs import configure_logging  # noqa: E402
from orders_service.runtime import Runtime  # noqa: E402
from orders_service.server.gate import RunGate, outside_gate  # noqa: E402

configure_logging(logging.INFO, RequestContext(), fmt=settings.log_format)
# A request waiting on Stripe or on password hashing steps out of the gate meanwhile: the runtime hands
# `outside_gate` to the parts that wait (the payment gateway, the password hasher).
app = create_app(runtime=Runtime(settings, waiting=outside_gate))
if settings.web_active_requests:
    app.wsgi_app = RunGate(app.wsgi_app, settings.web_active_requests, settings.web_gate_stall_ms / 1000,
                           on_wait=metrics.observe_gate_wait)
