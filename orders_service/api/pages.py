"""Pages: one set of query arguments and one envelope for every list route."""
from __future__ import annotations

from marshmallow import Schema, fields, validate


class PageArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(data_key="pageSize", load_default=20, validate=validate.Range(min=1, max=100))


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """The envelope `{items, page, pageSize, total}` around `item_schema` (a service's `Page`)."""
    return Schema.from_dict({
        "items": fields.List(fields.Nested(item_schema)),
        "page": fields.Integer(),
        "page_size": fields.Integer(data_key="pageSize"),
        "total": fields.Integer(),
    }, name=name)


class PartialMixin:
    """For a PATCH: the same fields and validators as the create schema, none required, no defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)
