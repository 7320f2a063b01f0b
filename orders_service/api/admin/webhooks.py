"""Outbound webhooks (admin): endpoints and their secrets, deliveries, and the pull feed of events."""
from __future__ import annotations

from datetime import timezone
from uuid import UUID

from marshmallow import Schema, ValidationError, fields, validate

from orders_service.api.blueprint import Blueprint
from orders_service.api.context import db_session, runtime, settings
from orders_service.api.fields import Text, UtcDateTime
from orders_service.api.pages import PageArgsSchema, PartialMixin, page_schema
from orders_service.api.security import authenticated
from orders_service.auth.models import Role
from orders_service.webhooks import deliveries, endpoints
from orders_service.webhooks.events import EventTypes
from orders_service.webhooks.models import DeliveryStatus, EndpointStatus

_ORDER_TYPE = validate.OneOf(EventTypes.ORDER)
_TYPES = fields.List(Text(validate=_ORDER_TYPE), validate=validate.Length(max=100),
                     metadata={"description": "Event types to receive; empty or absent: every type"})


class UtcDateTimeIn(UtcDateTime):
    """ISO 8601; a time without an offset is taken as UTC."""

    def _deserialize(self, value, attr, data, **kwargs):
        when = super()._deserialize(value, attr, data, **kwargs)
        try:
            return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
        except OverflowError:
            raise ValidationError("Not a representable time.") from None


# --- schemas ----------------------------------------------------------------------------------------------

class EndpointInSchema(Schema):
    url = Text(required=True, validate=validate.Length(min=1, max=2048),
               metadata={"description": "http or https (https only in production); no loopback, private or "
                                        "link-local address"})
    eventTypes = _TYPES
    description = Text(allow_none=True, validate=validate.Length(max=500))


class EndpointPatchSchema(PartialMixin, EndpointInSchema):
    status = Text(validate=validate.OneOf(EndpointStatus.ALL))


class EndpointSchema(Schema):
    id = fields.UUID()
    url = fields.String()
    eventTypes = fields.List(fields.String(), attribute="event_types")
    description = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(EndpointStatus.ALL)})
    disabledReason = fields.String(attribute="disabled_reason", allow_none=True,
                                   metadata={"description": "Why the service disabled it (an answer 410 Gone)"})
    createdAt = UtcDateTime(attribute="created_at")


class EndpointCreatedSchema(EndpointSchema):
    secret = fields.String(metadata={"description": "whsec_ + base64: shown here and on rotation only"})


class SecretSchema(Schema):
    secret = fields.String()


class PingSchema(Schema):
    eventId = fields.String(attribute="event_id")
    deliveryId = fields.UUID(attribute="delivery_id")


class ReplayInSchema(Schema):
    since = UtcDateTimeIn(metadata={"description": "ISO 8601, inclusive"})
    until = UtcDateTimeIn(metadata={"description": "ISO 8601, inclusive"})
    eventTypes = _TYPES


class QueuedSchema(Schema):
    queued = fields.Integer(metadata={"description": "How many deliveries were queued"})


class DeliveryQuerySchema(PageArgsSchema):
    endpointId = fields.UUID(data_key="endpointId", attribute="endpoint_id")
    status = Text(validate=validate.OneOf(DeliveryStatus.ALL))
    eventType = Text(attribute="event_type", validate=validate.OneOf((*EventTypes.ORDER, EventTypes.PING)))
    orderId = fields.UUID(attribute="order_id")


class DeliverySchema(Schema):
    id = fields.UUID()
    eventId = fields.String(attribute="event_id")
    endpointId = fields.UUID(attribute="endpoint_id")
    eventType = fields.String(attribute="event_type")
    status = fields.String(metadata={"enum": list(DeliveryStatus.ALL)})
    attempts = fields.Integer()
    lastStatusCode = fields.Integer(attribute="last_status_code", allow_none=True)
    lastError = fields.String(attribute="last_error", allow_none=True)
    nextAttemptAt = UtcDateTime(attribute="next_attempt_at", allow_none=True)
    deliveredAt = UtcDateTime(attribute="delivered_at", allow_none=True)


DeliveryPageSchema = page_schema(DeliverySchema, "WebhookDeliveryPage")


class FeedQuerySchema(Schema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**63 - 1),
                           metadata={"description": "The last sequence seen (exclusive); 0 from the start"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    type = Text(validate=_ORDER_TYPE)


class EventSchema(Schema):
    id = fields.String(metadata={"description": "evt_…; the deliveries' webhook-id"})
    type = fields.String()
    timestamp = UtcDateTime(attribute="occurred_at")
    sequence = fields.Integer()
    data = fields.Dict(metadata={"description": "{order: the order as this change left it (as GET "
                                                "/api/orders/{orderId} answers), orderSequence: 1, 2, 3… per order}"})


class FeedSchema(Schema):
    items = fields.List(fields.Nested(EventSchema))
    next = fields.Integer(metadata={"description": "The `after` of the next call"})


# --- routes -----------------------------------------------------------------------------------------------

blp = Blueprint("admin_webhooks", __name__, url_prefix="/api/admin",
                description="Outbound webhooks (admin): order events for other systems")
_ENDPOINT = "/webhook-endpoints/<uuid:endpoint_id>"


def _policy() -> endpoints.UrlPolicy:
    return endpoints.UrlPolicy(https_only=settings().is_production,
                               allow_private=settings().webhook_allow_private_urls, waiting=runtime().waiting)


@blp.route("/webhook-endpoints", methods=["POST"])
@authenticated(role=Role.ADMIN)
@blp.arguments(EndpointInSchema, example={"url": "https://erp.example.com/hooks/orders",
                                          "eventTypes": ["order.paid", "order.canceled"],
                                          "description": "ERP"})
@blp.response(201, EndpointCreatedSchema)
@blp.alt_response(400, description="A URL that is not http(s), names no public host, or an unknown event type")
def create_webhook_endpoint(body):
    return endpoints.create_endpoint(db_session(), body, _policy())


@blp.route("/webhook-endpoints", methods=["GET"])
@authenticated(role=Role.ADMIN)
@blp.response(200, EndpointSchema(many=True))
def list_webhook_endpoints():
    return endpoints.list_endpoints(db_session())


@blp.route(_ENDPOINT, methods=["GET"])
@authenticated(role=Role.ADMIN)
@blp.response(200, EndpointSchema)
def get_webhook_endpoint(endpoint_id: UUID):
    return endpoints.get_endpoint(db_session(), endpoint_id)


@blp.route(_ENDPOINT, methods=["PATCH"])
@authenticated(role=Role.ADMIN)
@blp.arguments(EndpointPatchSchema)
@blp.response(200, EndpointSchema)
@blp.alt_response(400, description="A URL that is not http(s), names no public host, or an unknown event type")
def update_webhook_endpoint(body, endpoint_id: UUID):
    return endpoints.update_endpoint(db_session(), endpoint_id, body, _policy())


@blp.route(_ENDPOINT, methods=["DELETE"])
@authenticated(role=Role.ADMIN)
@blp.response(204)
def delete_webhook_endpoint(endpoint_id: UUID):
    endpoints.delete_endpoint(db_session(), endpoint_id)


@blp.route(f"{_ENDPOINT}/rotate-secret", methods=["POST"])
@authenticated(role=Role.ADMIN)
@blp.response(200, SecretSchema)
def rotate_webhook_endpoint_secret(endpoint_id: UUID):
    """A new secret; for the next 24 hours deliveries carry a signature with the new and with the old one."""
    return {"secret": endpoints.rotate_secret(db_session(), endpoint_id)}


@blp.route(f"{_ENDPOINT}/test", methods=["POST"])
@authenticated(role=Role.ADMIN)
@blp.response(202, PingSchema)
@blp.alt_response(409, description="The endpoint is disabled")
def test_webhook_endpoint(endpoint_id: UUID):
    """A `ping` event is delivered to the endpoint, whatever its event types."""
    return endpoints.send_ping(db_session(), endpoint_id)


@blp.route(f"{_ENDPOINT}/replay", methods=["POST"])
@authenticated(role=Role.ADMIN)
@blp.arguments(ReplayInSchema, example={"since": "2026-12-01T00:00:00Z", "until": "2026-12-02T00:00:00Z"})
@blp.response(202, QueuedSchema)
@blp.alt_response(400, description="since after until, or a window of more than 100,000 events")
def replay_webhook_events(body, endpoint_id: UUID):
    """The events of the window that the endpoint subscribes to are delivered again, with their own ids."""
    return {"queued": endpoints.replay(db_session(), endpoint_id, body.get("since"), body.get("until"),
                                       body.get("eventTypes"))}


@blp.route("/webhook-deliveries", methods=["GET"])
@authenticated(role=Role.ADMIN)
@blp.arguments(DeliveryQuerySchema, location="query")
@blp.response(200, DeliveryPageSchema)
def list_webhook_deliveries(args):
    return deliveries.list_deliveries(db_session(), args, args["page"], args["page_size"])


@blp.route("/webhook-deliveries/<uuid:delivery_id>/retry", methods=["POST"])
@authenticated(role=Role.ADMIN)
@blp.response(202)
@blp.alt_response(409, description="Its endpoint is disabled, or it is being attempted right now")
def retry_webhook_delivery(delivery_id: UUID):
    """One more attempt now (a dead delivery becomes pending; if that attempt fails it is dead again)."""
    deliveries.retry_delivery(db_session(), delivery_id)


@blp.route("/events", methods=["GET"])
@authenticated(role=Role.ADMIN)
@blp.arguments(FeedQuerySchema, location="query")
@blp.response(200, FeedSchema)
def list_events(args):
    """The events, in `sequence` order, for systems that pull: go on with `after=<next>`."""
    items, after = deliveries.read_feed(db_session(), args["after"], args["limit"], args.get("type"))
    return {"items": items, "next": after}
