"""Alembic, driven from code so that `orders-service migrate` and the tests need no alembic.ini."""
from __future__ import annotations

from alembic import command
from alembic.config import Config

from orders_service.config import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")
