"""Small factories for test data, written straight to the database (the API is what tests exercise)."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import NamedTuple

from argon2 import PasswordHasher

from orders_service.api.security import mint_access_token
from orders_service.auth.models import Customer, Role
from orders_service.catalog.models import DeliveryMethod, Product, Variant

JWT_SECRET = "test-jwt-secret-that-is-long-enough"
PASSWORD = "correct horse battery"
_PASSWORD_HASH = PasswordHasher().hash(PASSWORD)


class Shop(NamedTuple):
    """What most order tests start from: a customer and their token, a product in stock, a delivery method."""

    customer: Customer
    auth: dict
    product: Product
    method: DeliveryMethod

    def body(self, quantity: int = 1, **extra) -> dict:
        """An order body for `quantity` of the product, delivered by the method."""
        return Make.order_body(self.customer, self.method, [(self.product, quantity)], **extra)


class Make:
    def __init__(self, app, session_factory):
        self.app = app
        self.session_factory = session_factory

    def _save(self, *objects):
        with self.session_factory() as session, session.begin():
            session.add_all(objects)
        return objects[0]

    def customer(self, role: str = Role.CUSTOMER, email: str | None = None) -> Customer:
        email = email or f"{uuid.uuid4().hex[:12]}@example.com"
        return self._save(Customer(email=email, name="Test Customer", password_hash=_PASSWORD_HASH, role=role))

    def token(self, customer: Customer, expires: timedelta | None = None) -> str:
        with self.app.app_context():
            return mint_access_token(customer.id, customer.role, expires)

    def auth(self, customer: Customer) -> dict:
        return {"Authorization": f"Bearer {self.token(customer)}"}

    def shopper(self) -> tuple[Customer, dict]:
        customer = self.customer()
        return customer, self.auth(customer)

    def admin(self) -> tuple[Customer, dict]:
        customer = self.customer(role=Role.ADMIN)
        return customer, self.auth(customer)

    def product(self, name="Premium Headphones", price_cents=199_99, stock=10, weight_grams=300,
                active=True, variants=()) -> Product:
        product = Product(name=name, price_cents=price_cents, stock=stock, weight_grams=weight_grams, active=active)
        product.variants.extend(Variant(**v) for v in variants)
        return self._save(product)

    def delivery_method(self, name="Standard Shipping", price_cents=10_00, countries=("US",),
                        cash_on_delivery=True, max_weight_grams=None, active=True) -> DeliveryMethod:
        return self._save(DeliveryMethod(name=name, price_cents=price_cents, countries=list(countries),
                                         cash_on_delivery=cash_on_delivery, max_weight_grams=max_weight_grams,
                                         active=active))

    def shop(self, price_cents=20_00, stock=10, delivery_price_cents=0, name="Premium Headphones") -> Shop:
        """A shopper, one product and a delivery method to everywhere (the tests' shop; `shop` fixture)."""
        customer, auth = self.shopper()
        return Shop(customer, auth, self.product(name, price_cents=price_cents, stock=stock),
                    self.delivery_method(price_cents=delivery_price_cents, countries=[]))

    @staticmethod
    def order_body(customer, method, lines, **extra) -> dict:
        """`lines`: (product, quantity) or (product, quantity, variant) tuples."""
        items = []
        for line in lines:
            product, quantity, *variant = line
            item = {"productId": str(product.id), "quantity": quantity}
            if variant:
                item["variantId"] = str(variant[0].id)
            items.append(item)
        body = {
            "customerId": str(customer.id),
            "deliveryMethodId": str(method.id),
            "deliveryAddress": {"street": "123 Main St", "city": "New York", "state": "NY",
                                "zipCode": "10001", "country": "USA"},
            "items": items,
        }
        body.update(extra)
        return body

    def stock_of(self, model, row_id) -> int:
        with self.session_factory() as session:
            return session.get(model, row_id).stock
