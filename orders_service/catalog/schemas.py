from marshmallow import Schema, fields, validate

from orders_service.fields import Country, Money, StrictInteger, Text

_name = validate.Length(min=1, max=200)
_sku = validate.Length(min=1, max=64)
_stock = validate.Range(min=0, max=1_000_000_000)


class PageArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    pageSize = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class VariantInSchema(Schema):
    name = Text(required=True, validate=_name)
    sku = Text(validate=_sku, allow_none=True)
    price = Money(allow_none=True)
    stock = StrictInteger(required=True, validate=_stock)


class VariantPatchSchema(Schema):
    name = Text(validate=_name)
    sku = Text(validate=_sku, allow_none=True)
    price = Money(allow_none=True)
    stock = StrictInteger(validate=_stock)


class ProductInSchema(Schema):
    name = Text(required=True, validate=_name)
    description = Text(allow_none=True, validate=validate.Length(max=5000))
    price = Money(required=True)
    stock = StrictInteger(load_default=0, validate=_stock)
    sku = Text(validate=_sku, allow_none=True)
    weightGrams = StrictInteger(load_default=0, validate=validate.Range(min=0, max=10_000_000))
    active = fields.Boolean(load_default=True)
    variants = fields.List(fields.Nested(VariantInSchema), load_default=list, validate=validate.Length(max=100))


class ProductPatchSchema(Schema):
    name = Text(validate=_name)
    description = Text(allow_none=True, validate=validate.Length(max=5000))
    price = Money()
    stock = StrictInteger(validate=_stock)
    weightGrams = StrictInteger(validate=validate.Range(min=0, max=10_000_000))
    active = fields.Boolean()


class VariantSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    sku = fields.String(allow_none=True)
    price = Money(attribute="effective_price_cents")
    stock = StrictInteger()


class ProductSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    description = fields.String(allow_none=True)
    price = Money(attribute="price_cents")
    stock = StrictInteger()
    sku = fields.String(allow_none=True)
    weightGrams = StrictInteger(attribute="weight_grams")
    active = fields.Boolean()
    variants = fields.List(fields.Nested(VariantSchema))


class ProductPageSchema(Schema):
    items = fields.List(fields.Nested(ProductSchema))
    page = fields.Integer()
    pageSize = fields.Integer()
    total = fields.Integer()


class DeliveryMethodInSchema(Schema):
    name = Text(required=True, validate=_name)
    price = Money(required=True)
    countries = fields.List(Country(), load_default=list, validate=validate.Length(max=300))
    maxWeightGrams = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=100_000_000))
    cashOnDelivery = fields.Boolean(load_default=True)
    active = fields.Boolean(load_default=True)
    estimatedDays = StrictInteger(allow_none=True, validate=validate.Range(min=0, max=365))


class DeliveryMethodPatchSchema(Schema):
    name = Text(validate=_name)
    price = Money()
    countries = fields.List(Country(), validate=validate.Length(max=300))
    maxWeightGrams = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=100_000_000))
    cashOnDelivery = fields.Boolean()
    active = fields.Boolean()
    estimatedDays = StrictInteger(allow_none=True, validate=validate.Range(min=0, max=365))


class DeliveryMethodSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    price = Money(attribute="price_cents")
    countries = fields.List(fields.String())
    maxWeightGrams = fields.Integer(attribute="max_weight_grams", allow_none=True)
    cashOnDelivery = fields.Boolean(attribute="cash_on_delivery")
    active = fields.Boolean()
    estimatedDays = fields.Integer(attribute="estimated_days", allow_none=True)


class DeliveryMethodQuerySchema(Schema):
    country = Country()
