"""The WSGI entry point for gunicorn (Procfile `web`)."""
from orders_service import create_app
from orders_service.ops.logs import configure_logging

configure_logging()
app = create_app()
