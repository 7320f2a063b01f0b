"""A page of a list, as services return it (the API's `page_schema` writes it out)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    items: list
    page: int
    page_size: int
    total: int
