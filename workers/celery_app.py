"""The Celery app: one instance, configured from the service's settings."""
from __future__ import annotations

from celery import Celery

from orders_service.config import INSTANCE_DIR, Settings


def make_celery(settings: Settings) -> Celery:
    app = Celery("orders_service")
    transport_options = {}
    if settings.broker_url.startswith("filesystem://"):
        # The embedded default: a broker in files under instance/, needing no server.
        folder = INSTANCE_DIR / "broker"
        for sub in ("out", "processed"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {"data_folder_in": str(folder / "out"), "data_folder_out": str(folder / "out"),
                             "processed_folder": str(folder / "processed"), "store_processed": False}
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=transport_options,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        beat_schedule_filename=str(INSTANCE_DIR / "celerybeat-schedule"),
    )
    return app


celery = make_celery(Settings.from_env())
