"""Accounts, tokens and who may see what (docs/api.md: "Authentication", "Accounts and tokens", the order
GET routes)."""
import time
import uuid
from datetime import timedelta

import jwt as pyjwt
import pytest
from sqlalchemy import delete, func, select, update

from orders_service.auth.models import Customer
from orders_service.orders.models import Order
from tests.support.factories import JWT_SECRET

PASSWORD = "correct horse battery"


def _error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.is_json and response.json["code"] == status and response.json["message"]
    return response.json


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _register(client, email="Ada.Lovelace@Example.com", password=PASSWORD, name="Ada"):
    return client.post("/api/auth/register", json={"email": email, "password": password, "name": name})


def _foreign_token(claims, key=JWT_SECRET, algorithm="HS256"):
    """A token minted by another system with PyJWT: only the claims given, nothing flask-jwt-extended adds."""
    now = int(time.time())
    return pyjwt.encode({"iat": now, "exp": now + 300, **claims}, key, algorithm=algorithm)


# --- accounts and tokens -------------------------------------------------------------------------

def test_register_returns_working_tokens(client):
    response = _register(client)
    assert response.status_code == 201, response.json
    assert set(response.json) == {"customerId", "accessToken", "refreshToken"}
    customer_id = uuid.UUID(response.json["customerId"])
    claims = pyjwt.decode(response.json["accessToken"], JWT_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["role"]) == (str(customer_id), "customer")
    listing = client.get("/api/orders", headers=_bearer(response.json["accessToken"]))
    assert listing.status_code == 200 and listing.json["total"] == 0


def test_email_is_taken_in_any_case(client):
    assert _register(client, email="Ada.Lovelace@Example.com").status_code == 201
    _error(_register(client, email="ada.lovelace@EXAMPLE.COM", name="Someone else"), 409)


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-email", "password": PASSWORD, "name": "Ada"}, "email"),
    ({"email": "ada@example.com", "password": "short", "name": "Ada"}, "password"),
    ({"email": "ada@example.com", "password": PASSWORD}, "name"),
    ({"email": "ada@example.com", "password": PASSWORD, "name": "Ada", "role": "admin"}, "role"),
    ({"email": "ada@example.com", "password": PASSWORD, "name": "Ada\u0000"}, "name"),
    ({"email": "ada@example.com", "password": PASSWORD, "name": "Ada\ud800"}, "name"),
    ({"email": "ada\udfff@example.com", "password": PASSWORD, "name": "Ada"}, "email"),
    ({"email": "ada@example.com\u0000", "password": PASSWORD, "name": "Ada"}, "email"),
    ({"email": "ada@example.com", "password": PASSWORD + "\ud83d", "name": "Ada"}, "password"),
    ({"email": "ada@example.com", "password": PASSWORD + "\u0000", "name": "Ada"}, "password"),
    # docs/api.md, `POST /api/auth/register`: at least 8 characters, not all whitespace, not among the most
    # common passwords.
    ({"email": "ada@example.com", "password": "1234567", "name": "Ada"}, "password"),
    ({"email": "ada@example.com", "password": " " * 8, "name": "Ada"}, "password"),
    ({"email": "ada@example.com", "password": "\t \n \u3000  \r", "name": "Ada"}, "password"),
    ({"email": "ada@example.com", "password": "12345678", "name": "Ada"}, "password"),
    ({"email": "ada@example.com", "password": "password", "name": "Ada"}, "password"),
    ({"email": "ada@example.com", "password": "Qwertyuiop", "name": "Ada"}, "password"),
    ({"email": "ada@example.com", "password": "x" * 1025, "name": "Ada"}, "password"),
], ids=["bad-email", "short-password", "no-name", "self-made-admin", "name-with-nul", "name-with-lone-surrogate",
        "email-with-lone-surrogate", "email-with-nul", "password-with-lone-surrogate", "password-with-nul",
        "password-7-chars", "password-8-spaces", "password-all-whitespace", "password-12345678",
        "password-password", "password-common-any-case", "password-1025-chars"])
def test_register_validation(client, body, field):
    payload = _error(client.post("/api/auth/register", json=body), 400)
    assert field in payload["errors"]
    assert _error(client.post("/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD}), 401)


def test_login(client):
    customer_id = _register(client).json["customerId"]
    response = client.post("/api/auth/login", json={"email": "ada.lovelace@example.com", "password": PASSWORD})
    assert response.status_code == 200, response.json
    assert set(response.json) == {"customerId", "accessToken", "refreshToken"}
    assert response.json["customerId"] == customer_id
    assert client.get("/api/orders", headers=_bearer(response.json["accessToken"])).status_code == 200


@pytest.mark.parametrize("email, password", [
    ("ada.lovelace@example.com", PASSWORD + "!"),
    ("nobody@example.com", PASSWORD),
], ids=["wrong-password", "unknown-email"])
def test_login_with_wrong_credentials_is_401(client, email, password):
    _register(client)
    assert "accessToken" not in _error(client.post("/api/auth/login", json={"email": email, "password": password}), 401)


def test_login_with_a_nul_in_the_email_is_a_4xx_not_a_500(client):
    _register(client)
    response = client.post("/api/auth/login", json={"email": "ada.lovelace@example.com\u0000", "password": PASSWORD})
    assert response.status_code in (400, 401), response.get_data(as_text=True)[:300]
    _error(response, response.status_code)


def test_a_long_uncommon_password_is_accepted(client):
    assert _register(client, password="x" * 1000 + " ok").status_code == 201
    login = client.post("/api/auth/login", json={"email": "ada.lovelace@example.com", "password": "x" * 1000 + " ok"})
    assert login.status_code == 200, login.json


@pytest.mark.parametrize("body", [
    {"email": "ada.lovelace@example.com\ud800", "password": PASSWORD},
    {"email": "ada.lovelace@example.com", "password": PASSWORD + "\udc00"},
    {"email": "ada.lovelace@example.com", "password": "x" * 1025},
    {"email": "ada.lovelace@example.com", "password": 12345678},
], ids=["email-lone-surrogate", "password-lone-surrogate", "password-1025-chars", "password-number"])
def test_login_with_unreadable_credentials_is_400(client, body):
    _register(client)
    assert "accessToken" not in _error(client.post("/api/auth/login", json=body), 400)


def test_refresh(client):
    tokens = _register(client).json
    response = client.post("/api/auth/refresh", headers=_bearer(tokens["refreshToken"]))
    assert response.status_code == 200, response.json
    assert set(response.json) == {"accessToken"}
    claims = pyjwt.decode(response.json["accessToken"], JWT_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["role"]) == (tokens["customerId"], "customer")
    assert client.get("/api/orders", headers=_bearer(response.json["accessToken"])).status_code == 200


def test_refresh_of_a_deleted_customer_is_401(client, db):
    tokens = _register(client).json
    with db.begin():
        db.execute(delete(Customer).where(Customer.id == uuid.UUID(tokens["customerId"])))
    _error(client.post("/api/auth/refresh", headers=_bearer(tokens["refreshToken"])), 401)


def test_refresh_takes_the_role_from_the_database(client, db):
    """A refresh token keeps its claims for 30 days; the new access token has the customer's role of now."""
    tokens = _register(client).json
    customer_id = uuid.UUID(tokens["customerId"])
    with db.begin():
        db.execute(update(Customer).where(Customer.id == customer_id).values(role="admin"))
    promoted = client.post("/api/auth/refresh", headers=_bearer(tokens["refreshToken"]))
    assert promoted.status_code == 200, promoted.json
    assert pyjwt.decode(promoted.json["accessToken"], JWT_SECRET, algorithms=["HS256"])["role"] == "admin"
    with db.begin():
        db.execute(update(Customer).where(Customer.id == customer_id).values(role="customer"))
    demoted = client.post("/api/auth/refresh", headers=_bearer(tokens["refreshToken"]))
    assert pyjwt.decode(demoted.json["accessToken"], JWT_SECRET, algorithms=["HS256"])["role"] == "customer"
    _error(client.patch(f"/api/admin/orders/{uuid.uuid4()}", json={"status": "delivered"},
                        headers=_bearer(demoted.json["accessToken"])), 403)


def test_refresh_needs_a_refresh_token(client):
    tokens = _register(client).json
    _error(client.post("/api/auth/refresh", headers=_bearer(tokens["accessToken"])), 401)
    _error(client.post("/api/auth/refresh"), 401)


def test_a_refresh_token_is_not_an_access_token(client):
    tokens = _register(client).json
    _error(client.get("/api/orders", headers=_bearer(tokens["refreshToken"])), 401)


# --- which tokens are accepted -------------------------------------------------------------------

BAD_TOKENS = {
    "no-header": lambda make, c: {},
    "empty-bearer": lambda make, c: {"Authorization": "Bearer "},
    "basic-scheme": lambda make, c: {"Authorization": "Basic YWRhOnNlY3JldA=="},
    "garbage": lambda make, c: _bearer("not.a.jwt"),
    "expired": lambda make, c: _bearer(make.token(c, expires=timedelta(seconds=-1))),
    "other-key": lambda make, c: _bearer(_foreign_token({"sub": str(c.id), "role": "customer"},
                                                        key="another-secret-that-is-long-enough")),
    "alg-none": lambda make, c: _bearer(_foreign_token({"sub": str(c.id), "role": "customer"}, key=None,
                                                       algorithm="none")),
    "non-uuid-sub": lambda make, c: _bearer(_foreign_token({"sub": "ada", "role": "customer"})),
    "integer-sub": lambda make, c: _bearer(_foreign_token({"sub": 42, "role": "customer"})),
    "no-sub": lambda make, c: _bearer(_foreign_token({"role": "customer"})),
    "no-role": lambda make, c: _bearer(_foreign_token({"sub": str(c.id)})),
    "unknown-role": lambda make, c: _bearer(_foreign_token({"sub": str(c.id), "role": "superuser"})),
    "foreign-expired": lambda make, c: _bearer(_foreign_token({"sub": str(c.id), "role": "customer",
                                                               "exp": int(time.time()) - 10})),
    "no-exp": lambda make, c: _bearer(pyjwt.encode({"sub": str(c.id), "role": "customer"}, JWT_SECRET, "HS256")),
}


@pytest.mark.parametrize("headers", list(BAD_TOKENS.values()), ids=list(BAD_TOKENS))
def test_bad_tokens_are_401(client, make, headers):
    customer = make.customer()
    _error(client.get("/api/orders", headers=headers(make, customer)), 401)


def test_token_minted_by_another_system_is_accepted(client, make):
    customer, auth = make.shopper()
    product = make.product(stock=5)
    method = make.delivery_method(countries=[])
    assert client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]),
                       headers=auth).status_code == 204
    foreign = _bearer(_foreign_token({"sub": str(customer.id), "role": "customer"}))
    response = client.get("/api/orders", headers=foreign)
    assert response.status_code == 200, response.json
    assert response.json["total"] == 1

    admin = make.customer(role="admin")
    foreign_admin = _bearer(_foreign_token({"sub": str(admin.id), "role": "admin"}))
    created = client.post("/api/delivery-methods", json={"name": "Courier", "price": 5}, headers=foreign_admin)
    assert created.status_code == 201, created.json


# --- who may do what -----------------------------------------------------------------------------

@pytest.fixture
def catalog(make):
    product = make.product("Desk Lamp", price_cents=25_00, stock=100, variants=())
    with_variant = make.product("T-Shirt", price_cents=15_00, variants=[{"name": "M", "stock": 3}])
    method = make.delivery_method("Standard", price_cents=5_00, countries=[])
    return product, with_variant, method


ADMIN_ROUTES = {
    "create-product": lambda p, v, m: ("post", "/api/products", {"name": "Chair", "price": 80}),
    "patch-product": lambda p, v, m: ("patch", f"/api/products/{p.id}", {"price": 1}),
    "add-variant": lambda p, v, m: ("post", f"/api/products/{v.id}/variants", {"name": "L", "stock": 1}),
    "patch-variant": lambda p, v, m: ("patch", f"/api/products/{v.id}/variants/{v.variants[0].id}", {"stock": 0}),
    "create-delivery-method": lambda p, v, m: ("post", "/api/delivery-methods", {"name": "Free", "price": 0}),
    "patch-delivery-method": lambda p, v, m: ("patch", f"/api/delivery-methods/{m.id}", {"price": 0}),
}


@pytest.mark.parametrize("route", list(ADMIN_ROUTES.values()), ids=list(ADMIN_ROUTES))
def test_admin_routes_refuse_customers_and_anonymous(client, make, catalog, route):
    method, path, body = route(*catalog)
    _customer, auth = make.shopper()
    _error(client.open(path, method=method.upper(), json=body, headers=auth), 403)
    _error(client.open(path, method=method.upper(), json=body), 401)
    product, with_variant, delivery = catalog
    assert client.get("/api/products").json["total"] == 2
    assert client.get(f"/api/products/{product.id}").json["price"] == 25.0
    assert client.get(f"/api/products/{with_variant.id}").json["variants"] == [
        {"id": str(with_variant.variants[0].id), "name": "M", "sku": None, "price": 15.0, "stock": 3}]
    assert [(d["name"], d["price"]) for d in client.get("/api/delivery-methods").json] == [("Standard", 5.0)]
    _admin, admin_auth = make.admin()
    assert client.open(path, method=method.upper(), json=body, headers=admin_auth).status_code in (200, 201)


@pytest.fixture
def orders(client, make, catalog, db):
    """Orders of two customers, placed in this order: a1, b1, a2, a3; a2 is then shipped."""
    product, _v, method = catalog
    (alice, alice_auth), (bob, bob_auth) = make.shopper(), make.shopper()
    ids = {}
    for name, (customer, auth) in [("a1", (alice, alice_auth)), ("b1", (bob, bob_auth)),
                                   ("a2", (alice, alice_auth)), ("a3", (alice, alice_auth))]:
        response = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
        assert response.status_code == 204, response.json
        ids[name] = response.headers["Location"].rsplit("/", 1)[1]
    db.execute(update(Order).where(Order.id == uuid.UUID(ids["a2"])).values(status="shipped"))
    db.commit()
    return ids, alice_auth, bob_auth


def _listed(response):
    assert response.status_code == 200, response.json
    return [order["id"] for order in response.json["items"]], response.json["total"]


def test_another_customers_order_is_404(client, orders):
    ids, alice_auth, bob_auth = orders
    assert client.get(f"/api/orders/{ids['a1']}", headers=alice_auth).status_code == 200
    assert _error(client.get(f"/api/orders/{ids['a1']}", headers=bob_auth), 404)["message"] == \
        _error(client.get(f"/api/orders/{uuid.uuid4()}", headers=bob_auth), 404)["message"]


def test_customers_list_their_own_orders_newest_first(client, orders):
    ids, alice_auth, bob_auth = orders
    assert _listed(client.get("/api/orders", headers=alice_auth)) == ([ids["a3"], ids["a2"], ids["a1"]], 3)
    assert _listed(client.get("/api/orders", headers=bob_auth)) == ([ids["b1"]], 1)


def test_admin_lists_everyones_orders(client, make, orders):
    ids, _a, _b = orders
    _admin, admin_auth = make.admin()
    assert _listed(client.get("/api/orders", headers=admin_auth)) == (
        [ids["a3"], ids["a2"], ids["b1"], ids["a1"]], 4)
    assert client.get(f"/api/orders/{ids['b1']}", headers=admin_auth).status_code == 200


def test_status_filter(client, orders):
    ids, alice_auth, _b = orders
    assert _listed(client.get("/api/orders?status=confirmed", headers=alice_auth)) == ([ids["a3"], ids["a1"]], 2)
    assert _listed(client.get("/api/orders?status=shipped", headers=alice_auth)) == ([ids["a2"]], 1)
    assert _listed(client.get("/api/orders?status=delivered", headers=alice_auth)) == ([], 0)
    assert "status" in _error(client.get("/api/orders?status=lost", headers=alice_auth), 400)["errors"]


def test_pages(client, orders):
    ids, alice_auth, _b = orders
    response = client.get("/api/orders?page=2&pageSize=2", headers=alice_auth)
    assert _listed(response) == ([ids["a1"]], 3)
    assert (response.json["page"], response.json["pageSize"]) == (2, 2)
    assert _listed(client.get("/api/orders?page=1&pageSize=2", headers=alice_auth)) == ([ids["a3"], ids["a2"]], 3)
    assert _listed(client.get("/api/orders?page=3&pageSize=2", headers=alice_auth)) == ([], 3)


@pytest.mark.parametrize("query", ["page=0", "pageSize=0", "pageSize=101", "page=x", "pageSize=1.5"])
def test_bad_page_arguments_are_400(client, orders, query):
    _ids, alice_auth, _b = orders
    _error(client.get(f"/api/orders?{query}", headers=alice_auth), 400)


ORDER_ROUTES = {  # every order route of docs/api.md, "Orders", with a body that would otherwise be accepted
    "place-order": lambda o, body: ("post", "/api/orders", body),
    "place-order-with-payment": lambda o, body: ("post", "/api/orders/with-payment", body),
    "mark-paid": lambda o, body: ("patch", f"/api/orders/{o}/paid", None),
    "list-orders": lambda o, body: ("get", "/api/orders", None),
    "get-order": lambda o, body: ("get", f"/api/orders/{o}", None),
    "cancel-order": lambda o, body: ("post", f"/api/orders/{o}/cancel", None),
    "fulfil-order": lambda o, body: ("patch", f"/api/admin/orders/{o}", {"status": "shipped", "trackingNumber": "T"}),
}


@pytest.mark.parametrize("route", list(ORDER_ROUTES.values()), ids=list(ORDER_ROUTES))
@pytest.mark.parametrize("token", ["no-header", "garbage", "expired", "other-key"])
def test_order_routes_refuse_a_missing_or_bad_token_and_change_nothing(client, make, catalog, db, route, token):
    customer, auth = make.shopper()
    product, _variant, method = catalog
    body = make.order_body(customer, method, [(product, 1)])
    placed = client.post("/api/orders", json=body, headers=auth)
    order_id = placed.headers["Location"].rsplit("/", 1)[1]
    verb, path, payload = route(order_id, body)

    _error(client.open(path, method=verb.upper(), json=payload, headers=BAD_TOKENS[token](make, customer)), 401)

    db.expire_all()
    with db.begin():
        assert db.scalar(select(func.count()).select_from(Order)) == 1
        assert db.get(Order, uuid.UUID(order_id)).status == "confirmed"
    assert make.stock_of(type(product), product.id) == 99


def test_fulfilment_is_for_admins_only(client, make, catalog, db):
    customer, auth = make.shopper()
    product, _variant, method = catalog
    placed = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
    path = f"/api/admin/orders/{placed.headers['Location'].rsplit('/', 1)[1]}"
    body = {"status": "shipped", "trackingNumber": "T"}
    assert _error(client.patch(path, json=body, headers=auth), 403)["message"] == "This action requires the admin role"
    _error(client.patch(path, json=body), 401)
    _admin, admin_auth = make.admin()
    assert client.patch(path, json=body, headers=admin_auth).json["status"] == "shipped"
