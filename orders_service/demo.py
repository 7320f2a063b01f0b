"""Demo data: the seed document's catalog and a demo customer. Running it again duplicates nothing."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders_service.auth.models import Customer, Role
from orders_service.auth.passwords import Passwords
from orders_service.auth.service import ensure_customer
from orders_service.catalog.models import DeliveryMethod, Product, Variant

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
ADMIN_EMAIL = "admin@example.com"

# Priced so that the seed's with-payment example (2 headphones, 1 phone case, standard delivery)
# comes to the seed's 459.98.
PRODUCTS = [
    dict(sku="HDP-PREMIUM", name="Premium Headphones", description="Over-ear, noise cancelling.",
         price_cents=199_99, stock=50, weight_grams=350, variants=[]),
    dict(sku="CASE", name="Phone Case", description="Slim case, two colours.", price_cents=50_00, stock=0,
         weight_grams=60, variants=[dict(sku="CASE-BLACK", name="Black", stock=100),
                                    dict(sku="CASE-CLEAR", name="Clear", stock=100)]),
    dict(sku="CABLE-USBC", name="USB-C Cable", description="2 m, braided.", price_cents=19_99, stock=200,
         weight_grams=80, variants=[]),
]
DELIVERY_METHODS = [
    dict(name="Standard Shipping", price_cents=10_00, countries=["US", "CA"], cash_on_delivery=True,
         estimated_days=5, max_weight_grams=30_000),
    dict(name="Express Courier", price_cents=25_00, countries=[], cash_on_delivery=False,
         estimated_days=2, max_weight_grams=10_000),
]


@dataclass(frozen=True)
class Demo:
    customer: Customer
    admin: Customer
    headphones: Product
    phone_case: Product
    standard: DeliveryMethod


def seed_demo(session: Session, passwords: Passwords) -> Demo:
    """Create (once) the demo catalog, delivery methods, customer and admin."""
    with session.begin():
        for spec in PRODUCTS:
            spec = dict(spec)
            variants = spec.pop("variants")
            product = session.scalar(select(Product).where(Product.sku == spec["sku"]))
            if product is None:
                product = Product(**spec)
                session.add(product)
                product.variants.extend(Variant(**v) for v in variants)
        for spec in DELIVERY_METHODS:
            if session.scalar(select(DeliveryMethod).where(DeliveryMethod.name == spec["name"])) is None:
                session.add(DeliveryMethod(**spec))
    customer = ensure_customer(session, passwords, DEMO_EMAIL, "Demo Customer", password=DEMO_PASSWORD)
    admin = ensure_customer(session, passwords, ADMIN_EMAIL, "Shop Admin", role=Role.ADMIN)
    with session.begin():
        return Demo(
            customer=customer,
            admin=admin,
            headphones=session.scalar(select(Product).where(Product.sku == "HDP-PREMIUM")),
            phone_case=session.scalar(select(Product).where(Product.sku == "CASE")),
            standard=session.scalar(select(DeliveryMethod).where(DeliveryMethod.name == "Standard Shipping")),
        )
