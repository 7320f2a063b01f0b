"""The WSGI entry point for gunicorn (Procfile `web`)."""
from orders_service import create_app

app = create_app()
