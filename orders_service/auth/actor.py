"""Who is calling: what services need to know about the caller, with no web framework attached."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from orders_service.auth.models import Role


@dataclass(frozen=True)
class Actor:
    """The customer id of the token and its role."""

    customer_id: uuid.UUID
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def may_see(self, customer_id: uuid.UUID) -> bool:
        """Customers reach their own orders only; an admin reaches everyone's."""
        return self.is_admin or customer_id == self.customer_id
