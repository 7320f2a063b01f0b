"""Catalog bodies. Fields are named as the models' attributes (`data_key` is the JSON name): services
assign what a schema loaded as it comes."""
from marshmallow import Schema, fields, validate

from orders_service.api.fields import Country, Money, StrictBoolean, StrictInteger, Text
from orders_service.api.pages import PartialMixin, page_schema

_name = validate.Length(min=1, max=200)
_sku = validate.Length(min=1, max=64)
_stock = validate.Range(min=0, max=1_000_000_000)


class VariantInSchema(Schema):
    name = Text(required=True, validate=_name)
    sku = Text(validate=_sku, allow_none=True)
    price_cents = Money(data_key="price", allow_none=True)
    stock = StrictInteger(required=True, validate=_stock)


class VariantPatchSchema(PartialMixin, VariantInSchema):
    pass


class ProductInSchema(Schema):
    name = Text(required=True, validate=_name)
    description = Text(allow_none=True, validate=validate.Length(max=5000))
    price_cents = Money(data_key="price", required=True)
    stock = StrictInteger(load_default=0, validate=_stock)
    sku = Text(validate=_sku, allow_none=True)
    weight_grams = StrictInteger(data_key="weightGrams", load_default=0, validate=validate.Range(min=0, max=10_000_000))
    active = StrictBoolean(load_default=True)
    variants = fields.List(fields.Nested(VariantInSchema), load_default=list, validate=validate.Length(max=100))


class ProductPatchSchema(PartialMixin, ProductInSchema):
    class Meta:
        exclude = ("sku", "variants")  # a SKU is for life; variants have routes of their own


class VariantSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    sku = fields.String(allow_none=True)
    effective_price_cents = Money(data_key="price")
    stock = fields.Integer()


class ProductSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    description = fields.String(allow_none=True)
    price_cents = Money(data_key="price")
    stock = fields.Integer()
    sku = fields.String(allow_none=True)
    weight_grams = fields.Integer(data_key="weightGrams")
    active = fields.Boolean()
    variants = fields.List(fields.Nested(VariantSchema))


ProductPageSchema = page_schema(ProductSchema, "ProductPage")


class DeliveryMethodInSchema(Schema):
    name = Text(required=True, validate=_name)
    price_cents = Money(data_key="price", required=True)
    countries = fields.List(Country(), load_default=list, validate=validate.Length(max=300))
    max_weight_grams = StrictInteger(data_key="maxWeightGrams", allow_none=True,
                                     validate=validate.Range(min=1, max=100_000_000))
    cash_on_delivery = StrictBoolean(data_key="cashOnDelivery", load_default=True)
    active = StrictBoolean(load_default=True)
    estimated_days = StrictInteger(data_key="estimatedDays", allow_none=True, validate=validate.Range(min=0, max=365))


class DeliveryMethodPatchSchema(PartialMixin, DeliveryMethodInSchema):
    pass


class DeliveryMethodSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    price_cents = Money(data_key="price")
    countries = fields.List(fields.String())
    max_weight_grams = fields.Integer(data_key="maxWeightGrams", allow_none=True)
    cash_on_delivery = fields.Boolean(data_key="cashOnDelivery")
    active = fields.Boolean()
    estimated_days = fields.Integer(data_key="estimatedDays", allow_none=True)


class DeliveryMethodQuerySchema(Schema):
    country = Country()
