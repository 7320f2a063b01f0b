"""Placing and reading orders."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, selectinload

from orders_service.auth.actor import Actor
from orders_service.auth.models import Customer
from orders_service.catalog.models import DeliveryMethod, Product, Variant
from orders_service.db import utcnow
from orders_service.errors import Forbidden, InvalidRequest, NotFound
from orders_service.money import Currency, describe, to_major
from orders_service.ops import metrics
from orders_service.orders import actions, idempotency
from orders_service.orders.models import Order, OrderItem, OrderStatus, PaymentMethod, PaymentStatus
from orders_service.orders.pricing import PricedLine, order_totals
from orders_service.orders.stock import StockLine, reserve_stock
from orders_service.pages import Page

_INSERT_ORDER = insert(Order.__table__)
_INSERT_ITEMS = insert(OrderItem.__table__)


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    replayed: bool  # True when an Idempotency-Key replay returned an earlier order


def check_actor_may_order_for(actor: Actor, customer_id: uuid.UUID) -> None:
    if not actor.may_see(customer_id):
        raise Forbidden("customerId does not match the authenticated customer")


def _price_lines(session: Session, items: list[dict], cur: Currency) -> list[PricedLine]:
    """Each line priced from the catalog; 404 for unknown products, 400 for what cannot be sold.

    Reads only the columns pricing needs, as plain rows: this runs for every order placed.
    """
    product_ids = {item["productId"] for item in items}
    variant_ids = {item["variantId"] for item in items if item.get("variantId")}
    has_variants = select(Variant.id).where(Variant.product_id == Product.id).exists().label("has_variants")
    products = {row.id: row for row in session.execute(
        select(Product.id, Product.name, Product.price_cents, Product.weight_grams, Product.active, has_variants)
        .where(Product.id.in_(product_ids)))}
    if len(products) != len(product_ids):
        raise NotFound("Product not found")
    variants = {}
    if variant_ids:
        variants = {row.id: row for row in session.execute(
            select(Variant.id, Variant.product_id, Variant.name, Variant.price_cents)
            .where(Variant.id.in_(variant_ids)))}

    lines = []
    for item in items:
        product = products[item["productId"]]
        if not product.active:
            raise InvalidRequest(f"Product '{product.name}' is not available")
        variant_id = item.get("variantId")
        if variant_id is not None:
            variant = variants.get(variant_id)
            if variant is None or variant.product_id != product.id:
                raise InvalidRequest(f"Variant {variant_id} is not a variant of product '{product.name}'")
            name = f"{product.name} ({variant.name})"
            price = variant.price_cents if variant.price_cents is not None else product.price_cents
        elif product.has_variants:
            raise InvalidRequest(f"Product '{product.name}' is sold by variant: choose a variantId")
        else:
            name, price = product.name, product.price_cents
        expected = item.get("unitPrice")
        if expected is not None and expected != price:
            raise InvalidRequest(
                f"Price of '{name}' has changed: you saw {to_major(expected, cur)}, it is now {to_major(price, cur)}"
            )
        lines.append(PricedLine(product.id, variant_id, name, price, item["quantity"], product.weight_grams))
    return lines


def _check_delivery(method, country: str, weight_grams: int, payment_method: str) -> None:
    if method.countries and country not in method.countries:
        raise InvalidRequest(f"Delivery method '{method.name}' does not deliver to {country}")
    if method.max_weight_grams is not None and weight_grams > method.max_weight_grams:
        raise InvalidRequest(
            f"Delivery method '{method.name}' cannot carry {weight_grams} g (at most {method.max_weight_grams} g)"
        )
    if payment_method == PaymentMethod.CASH_ON_DELIVERY and not method.cash_on_delivery:
        raise InvalidRequest(f"Delivery method '{method.name}' does not accept cash on delivery")


def place_order(
    session: Session, actor: Actor, data: dict, payment_method: str, cur: Currency,
    idempotency_key: str | None = None, idempotency_scope: str = "",
    total_limits: tuple[int | None, int | None] = (None, None),
) -> PlacedOrder:
    """Validate, price and reserve stock for a new order in one short transaction.

    `idempotency_scope` names the way of ordering (cash on delivery, online): one `Idempotency-Key`
    replays an order only when it is repeated the same way with the same body.
    """
    check_actor_may_order_for(actor, data["customerId"])
    order_id = uuid.uuid4()
    with session.begin():
        if idempotency_key is not None:
            fingerprint = idempotency.request_fingerprint(idempotency_scope, data)
            earlier = idempotency.claim_key(session, actor.customer_id, idempotency_key, fingerprint, order_id)
            if earlier is not None:
                return PlacedOrder(load_order(session, earlier), replayed=True)

        if session.scalar(select(Customer.id).where(Customer.id == data["customerId"])) is None:
            raise NotFound("Customer not found")
        method = session.execute(
            select(DeliveryMethod.id, DeliveryMethod.name, DeliveryMethod.price_cents, DeliveryMethod.countries,
                   DeliveryMethod.max_weight_grams, DeliveryMethod.cash_on_delivery, DeliveryMethod.active)
            .where(DeliveryMethod.id == data["deliveryMethodId"])
        ).first()
        if method is None or not method.active:
            raise NotFound("Delivery method not found")
        lines = _price_lines(session, data["items"], cur)
        totals = order_totals(lines, method.price_cents)
        smallest, largest = total_limits
        if smallest is not None and totals.total_cents < smallest:
            raise InvalidRequest(f"Order total {describe(totals.total_cents, cur)} is below the smallest online "
                                 f"payment, {describe(smallest, cur)}")
        if largest is not None and totals.total_cents > largest:
            raise InvalidRequest(f"Order total {describe(totals.total_cents, cur)} is more than an online payment "
                                 f"can take ({describe(largest, cur)})")
        address = data["deliveryAddress"]
        _check_delivery(method, address["country"], totals.weight_grams, payment_method)

        online = payment_method == PaymentMethod.ONLINE
        values = dict(
            id=order_id,
            customer_id=data["customerId"],
            status=OrderStatus.PENDING if online else OrderStatus.CONFIRMED,
            payment_method=payment_method,
            payment_status=PaymentStatus.UNPAID,
            currency=cur.code,
            subtotal_cents=totals.subtotal_cents,
            delivery_price_cents=totals.delivery_price_cents,
            total_cents=totals.total_cents,
            delivery_method_id=method.id,
            delivery_address=address,
            notes=data.get("notes"),
            refunded_cents=0,
            created_at=utcnow(),
        )
        # Core INSERTs built once rather than the unit of work: this runs for every order, and the ORM's
        # bookkeeping cost more than the SQL. The caller gets a detached Order built from the same values.
        session.execute(_INSERT_ORDER, values)
        order = Order(**values)
        item_rows = [
            dict(id=uuid.uuid4(), order_id=order_id, position=i, product_id=line.product_id,
                 variant_id=line.variant_id, name=line.name, unit_price_cents=line.unit_price_cents,
                 quantity=line.quantity, line_total_cents=line.line_total_cents)
            for i, line in enumerate(lines)
        ]
        session.execute(_INSERT_ITEMS, item_rows)
        actions.record_placed(session, order, item_rows)  # the rows: its outbound event carries the whole order
        # Stock last: on a hot product every order queues for its row lock, which is held until COMMIT,
        # so nothing but the commit may come after the UPDATE. A refusal rolls back the inserts above.
        reserve_stock(session, [StockLine(line.product_id, line.variant_id, line.name, line.quantity)
                                for line in lines])
    metrics.ORDERS_PLACED.labels(payment_method).inc()
    return PlacedOrder(order, replayed=False)


def load_order(session: Session, order_id: uuid.UUID) -> Order:
    order = session.scalar(
        select(Order).where(Order.id == order_id)
        .options(selectinload(Order.items), selectinload(Order.events))
    )
    if order is None:
        raise NotFound("Order not found")
    return order


def get_order(session: Session, actor: Actor, order_id: uuid.UUID) -> Order:
    """One order with its items and events; another customer's order is 404, as if it did not exist."""
    with session.begin():
        order = load_order(session, order_id)
    if not actor.may_see(order.customer_id):
        raise NotFound("Order not found")
    return order


def list_orders(session: Session, actor: Actor, status: str | None, page: int, page_size: int) -> Page:
    """The caller's orders, newest first (an admin's: everyone's)."""
    conditions = []
    if not actor.is_admin:
        conditions.append(Order.customer_id == actor.customer_id)
    if status:
        conditions.append(Order.status == status)
    with session.begin():
        total = session.scalar(select(func.count()).select_from(Order).where(*conditions))
        orders = session.scalars(
            select(Order).where(*conditions)
            .options(selectinload(Order.items), selectinload(Order.events))
            .order_by(Order.created_at.desc(), Order.id.desc())
            .offset((page - 1) * page_size).limit(page_size)
        ).all()
    return Page(orders, page, page_size, total)
