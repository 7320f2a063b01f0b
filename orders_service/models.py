"""Every model, imported once so that the metadata is complete (Alembic, tests)."""
from orders_service.auth.models import Customer  # noqa: F401
from orders_service.catalog.models import DeliveryMethod, Product, Variant  # noqa: F401
from orders_service.db import Base
from orders_service.notifications.models import Notification  # noqa: F401
from orders_service.orders.models import IdempotencyRecord, Order, OrderEvent, OrderItem, Refund  # noqa: F401
from orders_service.payments.models import StripeEvent  # noqa: F401
from orders_service.webhooks.models import EventSequencer, OutboundEvent, WebhookDelivery, WebhookEndpoint  # noqa: F401

metadata = Base.metadata
