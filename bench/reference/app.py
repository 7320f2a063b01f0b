"""The bare reference of the `hotpath` bench: a cash-on-delivery order with Flask, JWT, strict validation
and the SQLAlchemy ORM, and nothing else.

It answers `POST /api/orders` exactly as the service does for a valid order (204, `Location`), after
doing the same work the service must do for one:

- flask-jwt-extended verifies the HS256 bearer token (same secret, `exp` required, `sub` a UUID,
  `role` customer or admin) and the body's customerId must be the token's unless the role is admin;
- a strict marshmallow schema with the same fields and validation as the service's `OrderInSchema`
  (UUIDs, lengths, no NUL characters, strict integers, money with at most two decimals, the country
  looked up with pycountry);
- the same transaction as the service's `place_order`, statement for statement, through the ORM's
  mapped classes: the customer, the delivery method, the products (with whether they have
  variants) and any variants named; prices and delivery checks; the conditional stock UPDATE per row
  in the service's lock order; INSERT order, items and the 'placed' event; COMMIT.

And nothing else: no Idempotency-Key, no notification outbox, no metrics, no log line, no OpenAPI
layer (flask-smorest/webargs), no pool pre-ping. It is not part of the service and must not import it:
it maps the few columns it needs of the service's tables itself. The bench (bench/scenarios.py,
`hotpath`) runs it under gunicorn next to the service, against the same database, in the same run.

    DATABASE_URL=postgresql+psycopg://… JWT_SECRET_KEY=… gunicorn --pythonpath bench/reference app:app
"""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

import pycountry
from flask import Flask, jsonify, request
from flask_jwt_extended import JWTManager, get_jwt, verify_jwt_in_request
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import BigInteger, DateTime, ForeignKey, String, create_engine, insert, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

ROLES = ("customer", "admin")
MAX_CENTS = 100_000_000_00


# --- the tables (only the columns this app reads or writes) ---------------------------------------

class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict: JSONB, list: JSONB}


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class DeliveryMethod(Base):
    __tablename__ = "delivery_methods"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    countries: Mapped[list]
    max_weight_grams: Mapped[int | None]
    cash_on_delivery: Mapped[bool]
    active: Mapped[bool]


class Product(Base):
    __tablename__ = "products"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int]
    weight_grams: Mapped[int]
    active: Mapped[bool]


class Variant(Base):
    __tablename__ = "variants"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    name: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int | None] = mapped_column(BigInteger)
    stock: Mapped[int]


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(16))
    payment_method: Mapped[str] = mapped_column(String(24))
    payment_status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_cents: Mapped[int] = mapped_column(BigInteger)
    delivery_price_cents: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    refunded_cents: Mapped[int] = mapped_column(BigInteger)
    delivery_method_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("delivery_methods.id"))
    delivery_address: Mapped[dict]
    notes: Mapped[str | None]
    created_at: Mapped[datetime]


class OrderItem(Base):
    __tablename__ = "order_items"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    position: Mapped[int]
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("variants.id"))
    name: Mapped[str] = mapped_column(String(400))
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int]
    line_total_cents: Mapped[int] = mapped_column(BigInteger)


class OrderEvent(Base):
    __tablename__ = "order_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    type: Mapped[str] = mapped_column(String(48))
    at: Mapped[datetime]
    detail: Mapped[dict]


# --- the body: the same fields and validation as the service's OrderInSchema ----------------------

class Text(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        return text


class StrictInteger(fields.Integer):
    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class Money(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (str, bool)) or not isinstance(value, (int, float)):
            raise ValidationError("Must be a JSON number.")
        try:
            amount = Decimal(repr(value) if isinstance(value, float) else str(value))
        except InvalidOperation:
            raise ValidationError("Not a number.") from None
        if not amount.is_finite() or (amount.as_tuple().exponent < -2 and amount != amount.quantize(Decimal("0.01"))):
            raise ValidationError("Must be a finite number with at most two decimals.")
        cents = int(amount * 100)
        if not 0 <= cents <= MAX_CENTS:
            raise ValidationError("Out of range.")
        return cents


class Country(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if not value.strip():
            raise ValidationError("Not a valid country.")
        try:
            return pycountry.countries.lookup(value.strip()).alpha_2
        except LookupError:
            raise ValidationError("Unknown country.") from None


class AddressSchema(Schema):
    street = Text(required=True, validate=validate.Length(min=1, max=200))
    city = Text(required=True, validate=validate.Length(min=1, max=100))
    state = Text(allow_none=True, validate=validate.Length(max=100))
    zipCode = Text(required=True, validate=validate.Length(min=1, max=20))
    country = Country(required=True)


class OrderItemInSchema(Schema):
    productId = fields.UUID(required=True)
    quantity = StrictInteger(required=True, validate=validate.Range(min=1, max=1000))
    variantId = fields.UUID(allow_none=True, load_default=None)
    unitPrice = Money(allow_none=True, load_default=None)


class OrderInSchema(Schema):
    customerId = fields.UUID(required=True)
    deliveryMethodId = fields.UUID(required=True)
    deliveryAddress = fields.Nested(AddressSchema, required=True)
    items = fields.List(fields.Nested(OrderItemInSchema), required=True, validate=validate.Length(min=1, max=100))
    notes = Text(allow_none=True, load_default=None, validate=validate.Length(max=1000))


ORDER_IN = OrderInSchema()


# --- the order ------------------------------------------------------------------------------------

class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def place_order(session, body: dict) -> uuid.UUID:
    """The service's place_order for cash on delivery, minus idempotency and the outbox."""
    order_id = uuid.uuid4()
    with session.begin():
        if session.scalar(select(Customer.id).where(Customer.id == body["customerId"])) is None:
            raise Refused(404, "Customer not found")
        method = session.execute(
            select(DeliveryMethod.id, DeliveryMethod.name, DeliveryMethod.price_cents, DeliveryMethod.countries,
                   DeliveryMethod.max_weight_grams, DeliveryMethod.cash_on_delivery, DeliveryMethod.active)
            .where(DeliveryMethod.id == body["deliveryMethodId"])
        ).first()
        if method is None or not method.active:
            raise Refused(404, "Delivery method not found")

        items = body["items"]
        product_ids = {item["productId"] for item in items}
        variant_ids = {item["variantId"] for item in items if item["variantId"]}
        has_variants = select(Variant.id).where(Variant.product_id == Product.id).exists().label("has_variants")
        products = {row.id: row for row in session.execute(
            select(Product.id, Product.name, Product.price_cents, Product.weight_grams, Product.active, has_variants)
            .where(Product.id.in_(product_ids)))}
        if len(products) != len(product_ids):
            raise Refused(404, "Product not found")
        variants = {}
        if variant_ids:
            variants = {row.id: row for row in session.execute(
                select(Variant.id, Variant.product_id, Variant.name, Variant.price_cents)
                .where(Variant.id.in_(variant_ids)))}

        lines = []  # (product id, variant id, name, unit price, quantity)
        weight = 0
        for item in items:
            product = products[item["productId"]]
            if not product.active:
                raise Refused(400, f"Product '{product.name}' is not available")
            variant_id = item["variantId"]
            if variant_id is not None:
                variant = variants.get(variant_id)
                if variant is None or variant.product_id != product.id:
                    raise Refused(400, f"Variant {variant_id} is not a variant of product '{product.name}'")
                name = f"{product.name} ({variant.name})"
                price = variant.price_cents if variant.price_cents is not None else product.price_cents
            elif product.has_variants:
                raise Refused(400, f"Product '{product.name}' is sold by variant: choose a variantId")
            else:
                name, price = product.name, product.price_cents
            if item["unitPrice"] is not None and item["unitPrice"] != price:
                raise Refused(400, f"Price of '{name}' has changed")
            lines.append((product.id, variant_id, name, price, item["quantity"]))
            weight += product.weight_grams * item["quantity"]
        subtotal = sum(price * quantity for _, _, _, price, quantity in lines)
        address = body["deliveryAddress"]
        if method.countries and address["country"] not in method.countries:
            raise Refused(400, f"Delivery method '{method.name}' does not deliver to {address['country']}")
        if method.max_weight_grams is not None and weight > method.max_weight_grams:
            raise Refused(400, f"Delivery method '{method.name}' cannot carry {weight} g")
        if not method.cash_on_delivery:
            raise Refused(400, f"Delivery method '{method.name}' does not accept cash on delivery")

        # Stock per row, summed, in the service's lock order: products by id (as text), then variants.
        wanted: dict[tuple[bool, uuid.UUID], int] = {}
        for product_id, variant_id, _name, _price, quantity in lines:
            key = (True, variant_id) if variant_id else (False, product_id)
            wanted[key] = wanted.get(key, 0) + quantity
        for is_variant, row_id in sorted(wanted, key=lambda k: (k[0], str(k[1]))):
            model, quantity = (Variant if is_variant else Product), wanted[(is_variant, row_id)]
            taken = session.execute(
                update(model).where(model.id == row_id, model.stock >= quantity)
                .values(stock=model.stock - quantity).execution_options(synchronize_session=False)
            ).rowcount
            if taken != 1:
                raise Refused(400, "Insufficient stock")

        now = datetime.now(timezone.utc)
        session.execute(insert(Order).values(
            id=order_id, customer_id=body["customerId"], status="confirmed", payment_method="cash_on_delivery",
            payment_status="unpaid", currency="USD", subtotal_cents=subtotal,
            delivery_price_cents=method.price_cents, total_cents=subtotal + method.price_cents, refunded_cents=0,
            delivery_method_id=method.id, delivery_address=address, notes=body["notes"], created_at=now))
        session.execute(insert(OrderItem), [
            dict(id=uuid.uuid4(), order_id=order_id, position=i, product_id=product_id, variant_id=variant_id,
                 name=name, unit_price_cents=price, quantity=quantity, line_total_cents=price * quantity)
            for i, (product_id, variant_id, name, price, quantity) in enumerate(lines)
        ])
        session.execute(insert(OrderEvent).values(order_id=order_id, type="placed", at=now,
                                                  detail={"paymentMethod": "cash_on_delivery"}))
    return order_id


# --- the app --------------------------------------------------------------------------------------

def error(status: int, message: str, errors=None):
    body = {"code": status, "message": message}
    if errors:
        body["errors"] = errors
    return jsonify(body), status


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(JWT_SECRET_KEY=os.environ["JWT_SECRET_KEY"], JWT_ALGORITHM="HS256",
                      JWT_DECODE_ALGORITHMS=["HS256"], JWT_TOKEN_LOCATION=["headers"], JWT_VERIFY_SUB=False,
                      MAX_CONTENT_LENGTH=1024 * 1024)
    jwt = JWTManager(app)
    jwt.unauthorized_loader(lambda reason: error(401, "Missing or malformed Authorization header"))
    jwt.invalid_token_loader(lambda reason: error(401, "Invalid token"))
    jwt.expired_token_loader(lambda header, payload: error(401, "Token has expired"))
    # One connection per thread is all a worker needs; no pre-ping, no overflow tuning: the defaults.
    engine = create_engine(os.environ["DATABASE_URL"])
    sessions = sessionmaker(engine, expire_on_commit=False)

    @app.post("/api/orders")
    def post_order():
        verify_jwt_in_request()
        claims = get_jwt()
        try:
            subject = uuid.UUID(str(claims.get("sub")))
        except ValueError:
            return error(401, "Invalid token")
        if "exp" not in claims or claims.get("role") not in ROLES:
            return error(401, "Invalid token")
        if not request.is_json:
            return error(415, "Content-Type must be application/json")
        data = request.get_json(silent=True)
        if data is None:
            return error(400, "Request body is not valid JSON")
        try:
            body = ORDER_IN.load(data)
        except ValidationError as exc:
            return error(400, "Invalid order data", exc.messages)
        if body["customerId"] != subject and claims["role"] != "admin":
            return error(403, "customerId does not match the authenticated customer")
        try:
            with sessions() as session:
                order_id = place_order(session, body)
        except Refused as exc:
            return error(exc.status, exc.message)
        return "", 204, {"Location": f"/api/orders/{order_id}"}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


app = create_app()
