"""Alembic, driven from code so that `orders-service migrate` and the tests need no alembic.ini."""
from __future__ import annotations

from alembic import command
from alembic.config import Config

from orders_service.config import PROJECT_ROOT


def alembic_config(database_url: str, pooler: str = "none") -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["db_pooler"] = pooler  # DB_POOLER: how migrations connect (migrations/env.py)
    return config


def upgrade(database_url: str, pooler: str = "none") -> None:
    command.upgrade(alembic_config(database_url, pooler), "head")
