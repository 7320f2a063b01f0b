"""The catalog: products, their variants and stock, delivery methods."""
from __future__ import annotations

import uuid
from contextlib import contextmanager

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orders_service.catalog.models import DeliveryMethod, Product, Variant
from orders_service.errors import Conflict, NotFound
from orders_service.pages import Page


def _assign(obj, data: dict) -> None:
    """Set the validated fields (the schemas load them under the models' attribute names)."""
    for attribute, value in data.items():
        setattr(obj, attribute, value)


@contextmanager
def _unique_sku(what: str):
    """A transaction whose commit fails on a taken SKU: 409, nothing written."""
    try:
        yield
    except IntegrityError:
        raise Conflict(f"A {what} with this SKU already exists") from None


def list_products(session: Session, page: int, page_size: int) -> Page:
    """A page of active products, oldest first."""
    with session.begin():
        active = Product.active.is_(True)
        total = session.scalar(select(func.count()).select_from(Product).where(active))
        items = session.scalars(
            select(Product).where(active).order_by(Product.created_at, Product.id)
            .offset((page - 1) * page_size).limit(page_size)
        ).all()
    return Page(items, page, page_size, total)


def get_product(session: Session, product_id: uuid.UUID) -> Product:
    """One product; 404 when unknown (or inactive, for the public)."""
    with session.begin():
        product = session.get(Product, product_id)
    if product is None or not product.active:
        raise NotFound("Product not found")
    return product


def create_product(session: Session, data: dict) -> Product:
    """A new product with its variants."""
    variants = data.pop("variants", [])
    product = Product()
    _assign(product, data)
    for v in variants:
        variant = Variant()
        _assign(variant, v)
        product.variants.append(variant)
    with _unique_sku("product or variant"), session.begin():
        session.add(product)
    return product


def update_product(session: Session, product_id: uuid.UUID, data: dict) -> Product:
    """Change a product's fields (stock is set, not added)."""
    with _unique_sku("product"), session.begin():
        product = session.get(Product, product_id, with_for_update=True)
        if product is None:
            raise NotFound("Product not found")
        _assign(product, data)
    return product


def add_variant(session: Session, product_id: uuid.UUID, data: dict) -> Variant:
    """A new variant of a product."""
    with _unique_sku("variant"), session.begin():
        product = session.get(Product, product_id)
        if product is None:
            raise NotFound("Product not found")
        variant = Variant()
        _assign(variant, data)
        product.variants.append(variant)
    return variant


def update_variant(session: Session, product_id: uuid.UUID, variant_id: uuid.UUID, data: dict) -> Variant:
    """Change a variant's fields."""
    with _unique_sku("variant"), session.begin():
        variant = session.get(Variant, variant_id, with_for_update=True)
        if variant is None or variant.product_id != product_id:
            raise NotFound("Variant not found")
        _assign(variant, data)
    return variant


def list_delivery_methods(session: Session, country: str | None) -> list[DeliveryMethod]:
    """Active delivery methods, optionally those that deliver to an ISO alpha-2 country."""
    with session.begin():
        methods = session.scalars(
            select(DeliveryMethod).where(DeliveryMethod.active.is_(True)).order_by(DeliveryMethod.price_cents)
        ).all()
    return [m for m in methods if country is None or m.delivers_to(country)]


def create_delivery_method(session: Session, data: dict) -> DeliveryMethod:
    """A new delivery method."""
    method = DeliveryMethod()
    _assign(method, data)
    with session.begin():
        session.add(method)
    return method


def update_delivery_method(session: Session, method_id: uuid.UUID, data: dict) -> DeliveryMethod:
    """Change a delivery method's fields."""
    with session.begin():
        method = session.get(DeliveryMethod, method_id)
        if method is None:
            raise NotFound("Delivery method not found")
        _assign(method, data)
    return method
