"""The catalog: products and their variants, delivery methods; reading is public, writing is the admin's."""
from uuid import UUID

from orders_service.api.blueprint import Blueprint
from orders_service.api.catalog.schemas import (
    DeliveryMethodInSchema,
    DeliveryMethodPatchSchema,
    DeliveryMethodQuerySchema,
    DeliveryMethodSchema,
    ProductInSchema,
    ProductPageSchema,
    ProductPatchSchema,
    ProductSchema,
    VariantInSchema,
    VariantPatchSchema,
    VariantSchema,
)
from orders_service.api.context import db_session
from orders_service.api.pages import PageArgsSchema
from orders_service.api.security import authenticated
from orders_service.auth.models import Role
from orders_service.catalog import service

blp = Blueprint("catalog", __name__, url_prefix="/api", description="Products, variants and delivery methods")
admin = authenticated(role=Role.ADMIN)


@blp.route("/products", methods=["GET"])
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, ProductPageSchema)
def list_products(args):
    return service.list_products(db_session(), args["page"], args["page_size"])


@blp.route("/products", methods=["POST"])
@admin
@blp.arguments(ProductInSchema)
@blp.response(201, ProductSchema)
def create_product(body):
    return service.create_product(db_session(), body)


@blp.route("/products/<uuid:product_id>", methods=["GET"])
@blp.response(200, ProductSchema)
def get_product(product_id: UUID):
    return service.get_product(db_session(), product_id)


@blp.route("/products/<uuid:product_id>", methods=["PATCH"])
@admin
@blp.arguments(ProductPatchSchema)
@blp.response(200, ProductSchema)
def update_product(body, product_id: UUID):
    return service.update_product(db_session(), product_id, body)


@blp.route("/products/<uuid:product_id>/variants", methods=["POST"])
@admin
@blp.arguments(VariantInSchema)
@blp.response(201, VariantSchema)
def add_variant(body, product_id: UUID):
    return service.add_variant(db_session(), product_id, body)


@blp.route("/products/<uuid:product_id>/variants/<uuid:variant_id>", methods=["PATCH"])
@admin
@blp.arguments(VariantPatchSchema)
@blp.response(200, VariantSchema)
def update_variant(body, product_id: UUID, variant_id: UUID):
    return service.update_variant(db_session(), product_id, variant_id, body)


@blp.route("/delivery-methods", methods=["GET"])
@blp.arguments(DeliveryMethodQuerySchema, location="query")
@blp.response(200, DeliveryMethodSchema(many=True))
def list_delivery_methods(args):
    return service.list_delivery_methods(db_session(), args.get("country"))


@blp.route("/delivery-methods", methods=["POST"])
@admin
@blp.arguments(DeliveryMethodInSchema)
@blp.response(201, DeliveryMethodSchema)
def create_delivery_method(body):
    return service.create_delivery_method(db_session(), body)


@blp.route("/delivery-methods/<uuid:delivery_method_id>", methods=["PATCH"])
@admin
@blp.arguments(DeliveryMethodPatchSchema)
@blp.response(200, DeliveryMethodSchema)
def update_delivery_method(body, delivery_method_id: UUID):
    return service.update_delivery_method(db_session(), delivery_method_id, body)
