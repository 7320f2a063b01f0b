"""The WSGI entry point for gunicorn (Procfile `web`)."""
from orders_service.config import Settings
from orders_service.runtime import prepare_process

settings = Settings.from_env()
prepare_process(settings)  # before the app's imports: prometheus-client reads its folder when imported

import logging  # noqa: E402

from orders_service.app import create_app  # noqa: E402
from orders_service.ops.logs import configure_logging  # noqa: E402
from orders_service.ops.requests import RequestContext  # noqa: E402

configure_logging(logging.INFO, RequestContext(), fmt=settings.log_format)
app = create_app(settings)
