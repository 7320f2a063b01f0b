"""What the benchmark sends: the seeded catalog, the order mix, orders and signed webhook events through
the HTTP API, the same database work in plain psycopg (the ceiling), and the routes measured."""
from __future__ import annotations

import http.client
import itertools
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import psycopg
import stripe
from driver import Caller
from psycopg.types.json import Jsonb

from orders_service.api.security import mint_access_token
from orders_service.app import create_app
from orders_service.auth.models import Customer, Role
from orders_service.catalog.models import DeliveryMethod, Product
from orders_service.config import Settings

PRODUCTS = 10
PRODUCT_STOCK = 10_000_000  # far more than any run can sell: no order fails for lack of stock
CUSTOMERS = 8
ORDERS_PER_CALLER = 64  # each caller cycles through this many pre-built orders
TOKEN_LIFETIME = timedelta(hours=12)  # outlives any sensible --duration
ADDRESS = {"street": "123 Main St", "city": "New York", "state": "NY", "zipCode": "10001", "country": "US"}


@dataclass(frozen=True)
class Fixture:
    """The seeded rows the orders refer to."""

    customers: list[tuple[uuid.UUID, str]]  # (customer id, access token)
    product_ids: list[uuid.UUID]
    delivery_method_id: uuid.UUID


def seed(settings: Settings) -> Fixture:
    """Products with ample stock, one cash-on-delivery method shipping everywhere, a few customers."""
    app = create_app(settings)
    products = [Product(name=f"Bench product {i}", price_cents=10_00 + i * 1_00, stock=PRODUCT_STOCK,
                        weight_grams=200) for i in range(PRODUCTS)]
    method = DeliveryMethod(name="Bench delivery", price_cents=5_00, countries=[], cash_on_delivery=True)
    # Nobody logs in: the bench mints tokens directly, so the password hash is deliberately unusable.
    customers = [Customer(email=f"bench-{i}@example.com", name=f"Bench customer {i}", password_hash="!",
                          role=Role.CUSTOMER) for i in range(CUSTOMERS)]
    with app.extensions["orders.runtime"].session_factory() as session, session.begin():
        session.add_all([*products, method, *customers])
    with app.app_context():
        tokens = [mint_access_token(c.id, c.role, TOKEN_LIFETIME) for c in customers]
    # Close the pool now: the load generator forks, and children must not share its connections.
    app.extensions["orders.runtime"].dispose()
    return Fixture(
        customers=[(c.id, token) for c, token in zip(customers, tokens, strict=True)],
        product_ids=[p.id for p in products],
        delivery_method_id=method.id,
    )


def seed_products(settings: Settings, count: int, label: str) -> list[uuid.UUID]:
    """`count` more products with ample stock (no variants), named after `label`: their ids."""
    app = create_app(settings)
    products = [Product(name=f"Bench {label} product {i}", price_cents=10_00 + i % 50 * 1_00, stock=PRODUCT_STOCK,
                        weight_grams=200) for i in range(count)]
    with app.extensions["orders.runtime"].session_factory() as session, session.begin():
        session.add_all(products)
    app.extensions["orders.runtime"].dispose()  # the load generator forks: no connection may be shared
    return [p.id for p in products]


def random_orders(fixture: Fixture, slot: int) -> list[tuple[uuid.UUID, str, list[tuple[uuid.UUID, int]]]]:
    """The orders one caller places: (customer id, token, [(product id, quantity)]) with 1-2 distinct
    products. Seeded by the caller's slot so that the service and the raw ceiling see the same mix."""
    rng = random.Random(slot)
    customer_id, token = fixture.customers[slot % len(fixture.customers)]
    orders = []
    for _ in range(ORDERS_PER_CALLER):
        products = rng.sample(fixture.product_ids, rng.randint(1, 2))
        orders.append((customer_id, token, [(pid, rng.randint(1, 3)) for pid in products]))
    return orders


class Api:
    """One keep-alive connection to the service (on this machine, or at `host`)."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.connection = http.client.HTTPConnection(host, port, timeout=60)

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        try:
            self.connection.request("POST", path, body, headers)
            response = self.connection.getresponse()
            return response.status, response.read()  # read to the end, or the connection cannot be reused
        except (OSError, http.client.HTTPException):
            self.connection.close()  # the next request reconnects
            raise

    def close(self) -> None:
        self.connection.close()


class HttpOrders(Api):
    """Places orders through the API."""

    def __init__(self, port: int, scenario: Scenario, fixture: Fixture, slot: int, host: str = "127.0.0.1"):
        super().__init__(port, host)
        self.scenario = scenario
        # Bodies are encoded up front so that the client's CPU goes to HTTP, not to JSON.
        self.requests = itertools.cycle([
            (json.dumps({
                "customerId": str(customer_id),
                "deliveryMethodId": str(fixture.delivery_method_id),
                "deliveryAddress": ADDRESS,
                "items": [{"productId": str(pid), "quantity": quantity} for pid, quantity in lines],
            }).encode(), {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            for customer_id, token, lines in random_orders(fixture, slot)
        ])

    def place(self) -> tuple[str | None, bytes]:
        """(None, body) for an order placed as docs/api.md says, else (what went wrong, body)."""
        status, payload = self.post(self.scenario.path, *next(self.requests))
        if status != self.scenario.ok_status:
            return f"HTTP {status}: {payload[:160].decode(errors='replace')}", payload
        missing = [key for key in self.scenario.returns if key not in json.loads(payload)]
        return (f"HTTP {status} without {', '.join(missing)}" if missing else None), payload

    def __call__(self) -> str | None:
        return self.place()[0]


def signed_event(secret: str, intent: dict) -> tuple[str, bytes, dict]:
    """A new payment_intent.succeeded event about `intent`, signed as Stripe signs it: (id, body, headers)."""
    event_id = f"evt_{uuid.uuid4().hex}"  # the inbox stores each event id once: every event is new
    body = json.dumps({"id": event_id, "object": "event", "type": "payment_intent.succeeded",
                       "created": int(time.time()), "livemode": False, "data": {"object": intent}})
    signature = stripe.WebhookSignature.generate_signature_header(body, secret)
    return event_id, body.encode(), {"Stripe-Signature": signature, "Content-Type": "application/json"}


def succeeded_intent(intent_id: str, order_id: str, amount: int, currency: str) -> dict:
    """The data.object of a payment_intent.succeeded event (trimmed to what the service reads)."""
    return {"id": intent_id, "object": "payment_intent", "amount": amount, "currency": currency.lower(),
            "status": "succeeded", "metadata": {"order_id": order_id}}


class SignedEvents(Api):
    """Delivers signed webhook events, as Stripe would. The intake only verifies, stores and enqueues,
    so the PaymentIntents and orders they name are made up."""

    def __init__(self, port: int, secret: str, slot: int):
        super().__init__(port)
        self.secret = secret
        self.intents = (succeeded_intent(f"pi_bench{slot}x{n}", str(uuid.uuid4()), 15_00, "USD")
                        for n in itertools.count())

    def __call__(self) -> str | None:
        # Signed per request, as Stripe does: the signature's timestamp must be recent.
        _, body, headers = signed_event(self.secret, next(self.intents))
        status, payload = self.post(WEBHOOK_PATH, body, headers)
        return None if status == 200 else f"HTTP {status}: {payload[:160].decode(errors='replace')}"


class RawCashOnDelivery:
    """The database work of one cash-on-delivery order with nothing else: the statements
    orders/service.py `place_order` sends, in the same order, in one transaction, on one psycopg
    connection. No pool pre-ping, no Flask, no JSON, no JWT."""

    SELECT_CUSTOMER = "SELECT email, name, password_hash, role, created_at, id FROM customers WHERE id = %s"
    SELECT_METHOD = ("SELECT name, price_cents, countries, max_weight_grams, cash_on_delivery, active, "
                     "estimated_days, created_at, id FROM delivery_methods WHERE id = %s")
    SELECT_PRODUCTS = ("SELECT name, description, sku, price_cents, stock, weight_grams, active, created_at, "
                       "id FROM products WHERE id IN ({})")
    # Product.variants is lazy="selectin": loading the products loads their variants in one more query.
    SELECT_VARIANTS = ("SELECT product_id, name, sku, price_cents, stock, created_at, id FROM variants "
                       "WHERE product_id IN ({}) ORDER BY created_at")
    TAKE_STOCK = "UPDATE products SET stock = stock - %s WHERE id = %s AND stock >= %s"
    # The columns the service sends as NULL (notes, tracking number, payment intent, paid_at, …) are
    # left to default to NULL: the same row, and nullable columns added later need no change here.
    INSERT_ORDER = (
        "INSERT INTO orders (customer_id, status, payment_method, payment_status, currency, subtotal_cents, "
        "delivery_price_cents, total_cents, refunded_cents, delivery_method_id, delivery_address, created_at, id) "
        "VALUES (%s, 'confirmed', 'cash_on_delivery', 'unpaid', 'USD', %s, %s, %s, 0, %s, %s, %s, %s)"
    )
    INSERT_EVENT = ("INSERT INTO order_events (order_id, type, at, detail) VALUES (%s, 'placed', %s, %s) "
                    "RETURNING id")
    INSERT_ITEMS = ("INSERT INTO order_items (order_id, position, product_id, variant_id, name, "
                    "unit_price_cents, quantity, line_total_cents, id) VALUES {}")
    ITEM_VALUES = "(%s, %s, %s, NULL, %s, %s, %s, %s, %s)"

    def __init__(self, conninfo: str, fixture: Fixture, slot: int):
        # Autocommit, so that `conn.transaction()` below is the only BEGIN/COMMIT, as in the service.
        self.connection = psycopg.connect(conninfo, autocommit=True)
        self.method_id = fixture.delivery_method_id
        self.orders = itertools.cycle(random_orders(fixture, slot))

    def __call__(self) -> str | None:
        customer_id, _token, lines = next(self.orders)
        order_id, now = uuid.uuid4(), datetime.now(timezone.utc)
        product_ids = [pid for pid, _ in lines]
        in_list = ", ".join(["%s"] * len(product_ids))
        with self.connection.transaction(), self.connection.cursor() as cur:
            if cur.execute(self.SELECT_CUSTOMER, (customer_id,)).fetchone() is None:
                raise LookupError("customer not found")
            method = cur.execute(self.SELECT_METHOD, (self.method_id,)).fetchone()
            if method is None or not method[4]:
                raise LookupError("no cash-on-delivery method")
            products = {row[-1]: row
                        for row in cur.execute(self.SELECT_PRODUCTS.format(in_list), product_ids)}
            cur.execute(self.SELECT_VARIANTS.format(in_list), product_ids).fetchall()
            subtotal = sum(products[pid][3] * quantity for pid, quantity in lines)
            delivery_price = method[1]
            cur.execute(self.INSERT_ORDER, (customer_id, subtotal, delivery_price, subtotal + delivery_price,
                                            self.method_id, Jsonb(ADDRESS), now, order_id))
            cur.execute(self.INSERT_EVENT, (order_id, now, Jsonb({"paymentMethod": "cash_on_delivery"})))
            cur.execute(
                self.INSERT_ITEMS.format(", ".join([self.ITEM_VALUES] * len(lines))),
                [value for position, (pid, quantity) in enumerate(lines)
                 for value in (order_id, position, pid, products[pid][0], products[pid][3], quantity,
                               products[pid][3] * quantity, uuid.uuid4())],
            )
            # Stock last, as the service takes it, in its lock order (by the id's text): no deadlocks.
            for pid, quantity in sorted(lines, key=lambda line: str(line[0])):
                if cur.execute(self.TAKE_STOCK, (quantity, pid, quantity)).rowcount != 1:
                    raise ValueError("insufficient stock")
        return None

    def close(self) -> None:
        self.connection.close()


@dataclass(frozen=True)
class Scenario:
    """One way of placing an order: the route the load generator posts to, the status that means
    "placed", the keys its body must have, and the same database work in plain psycopg (its ceiling),
    built per caller as raw(conninfo, fixture, slot), or None when a scenario has no meaningful ceiling."""

    path: str
    ok_status: int
    returns: tuple[str, ...] = ()
    raw: Callable[[str, Fixture, int], Caller] | None = None


CASH_ON_DELIVERY = Scenario(path="/api/orders", ok_status=204, raw=RawCashOnDelivery)
# No raw ceiling: most of its time is the wait on Stripe, which no psycopg loop reproduces.
WITH_PAYMENT = Scenario(path="/api/orders/with-payment", ok_status=200,
                        returns=("orderId", "clientSecret", "totalAmount", "currency"))
WEBHOOK_PATH = "/api/webhooks/stripe"
