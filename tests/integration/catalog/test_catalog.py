"""Products, variants and delivery methods through the API (docs/api.md, "Catalog")."""
import uuid

import pytest

INVALID = "Invalid request data"


@pytest.fixture
def admin_auth(make):
    return make.admin()[1]


def _ok(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.json


def _error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json and response.json["code"] == status and response.json["message"]
    return response.json


def _is_uuid(value):
    try:
        return str(uuid.UUID(value)) == value
    except (TypeError, ValueError, AttributeError):
        return False


# --- products and variants -----------------------------------------------------------------------

LAPTOP_STAND = {
    "name": "Laptop Stand", "description": "Aluminium", "price": 459.98, "stock": 0, "sku": "LS-1",
    "weightGrams": 1200, "active": True,
    "variants": [{"name": "Silver", "sku": "LS-1-S", "stock": 3},
                 {"name": "Black", "sku": "LS-1-B", "price": 479.5, "stock": 2}],
}


def test_admin_creates_a_product_with_variants(client, admin_auth):
    response = client.post("/api/products", json=LAPTOP_STAND, headers=admin_auth)
    created = _ok(response, 201)
    assert _is_uuid(created["id"])
    assert b'"price":459.98' in response.data.replace(b" ", b"")
    assert {k: v for k, v in created.items() if k not in ("id", "variants")} == \
        {k: v for k, v in LAPTOP_STAND.items() if k != "variants"}
    assert all(_is_uuid(v["id"]) for v in created["variants"])
    assert [(v["name"], v["sku"], v["price"], v["stock"]) for v in created["variants"]] == [
        ("Silver", "LS-1-S", 459.98, 3), ("Black", "LS-1-B", 479.5, 2)]
    assert _ok(client.get(f"/api/products/{created['id']}")) == created


def test_variants_of_a_new_product_can_be_ordered(client, make, admin_auth):
    created = _ok(client.post("/api/products", json=LAPTOP_STAND, headers=admin_auth), 201)
    customer, auth = make.shopper()
    method = make.delivery_method(countries=[], price_cents=0)
    body = {**make.order_body(customer, method, []),
            "items": [{"productId": created["id"], "variantId": created["variants"][0]["id"], "quantity": 1}]}
    response = client.post("/api/orders", json=body, headers=auth)
    assert response.status_code == 204, response.json
    assert client.get(response.headers["Location"], headers=auth).json["totalAmount"] == 459.98


@pytest.mark.parametrize("price", [0, 0.1, 0.29, 1.15, 19.99, 459.98, 1000000.01, 99999999.99])
def test_money_round_trips_exactly(client, admin_auth, price):
    created = _ok(client.post("/api/products", json={"name": "Thing", "price": price}, headers=admin_auth), 201)
    assert created["price"] == price
    assert _ok(client.get(f"/api/products/{created['id']}"))["price"] == price


def test_product_defaults(client, admin_auth):
    created = _ok(client.post("/api/products", json={"name": "Pen", "price": 1.5}, headers=admin_auth), 201)
    assert {k: created[k] for k in ("stock", "active", "variants", "weightGrams", "sku")} == \
        {"stock": 0, "active": True, "variants": [], "weightGrams": 0, "sku": None}


def test_product_list_is_public_paginated_and_only_active(client, make):
    active = [make.product(f"Product {i}") for i in range(3)]
    make.product("Retired", active=False)
    page = _ok(client.get("/api/products"))
    assert set(page) == {"items", "page", "pageSize", "total"}
    assert (page["page"], page["pageSize"], page["total"]) == (1, 20, 3)
    assert sorted(p["id"] for p in page["items"]) == sorted(str(p.id) for p in active)

    first = _ok(client.get("/api/products?page=1&pageSize=2"))
    second = _ok(client.get("/api/products?page=2&pageSize=2"))
    assert (len(first["items"]), len(second["items"]), second["total"], second["pageSize"]) == (2, 1, 3, 2)
    assert {p["id"] for p in first["items"] + second["items"]} == {str(p.id) for p in active}


@pytest.mark.parametrize("query", ["page=0", "pageSize=101", "page=abc"])
def test_bad_product_page_arguments_are_400(client, query):
    assert _error(client.get(f"/api/products?{query}"), 400)["message"] == INVALID


def test_product_is_public_and_404_when_unknown_or_inactive(client, make):
    lamp = make.product("Desk Lamp", price_cents=25_00)
    retired = make.product("Retired", active=False)
    assert _ok(client.get(f"/api/products/{lamp.id}"))["name"] == "Desk Lamp"
    _error(client.get(f"/api/products/{uuid.uuid4()}"), 404)
    _error(client.get(f"/api/products/{retired.id}"), 404)
    _error(client.get("/api/products/desk-lamp"), 404)


def test_patch_product(client, make, admin_auth):
    lamp = make.product("Desk Lamp", price_cents=25_00, stock=1)
    changes = {"name": "Desk Lamp XL", "description": "Brighter", "price": 12.34, "stock": 7, "weightGrams": 900}
    patched = _ok(client.patch(f"/api/products/{lamp.id}", json=changes, headers=admin_auth))
    assert {k: patched[k] for k in changes} == changes
    assert _ok(client.get(f"/api/products/{lamp.id}")) == patched

    assert _ok(client.patch(f"/api/products/{lamp.id}", json={"active": False}, headers=admin_auth))["active"] is False
    _error(client.get(f"/api/products/{lamp.id}"), 404)
    assert _ok(client.get("/api/products"))["total"] == 0
    _ok(client.patch(f"/api/products/{lamp.id}", json={"active": True}, headers=admin_auth))
    assert _ok(client.get(f"/api/products/{lamp.id}"))["price"] == 12.34

    _error(client.patch(f"/api/products/{uuid.uuid4()}", json={"stock": 1}, headers=admin_auth), 404)


def test_add_and_patch_variants(client, make, admin_auth):
    shirt = make.product("T-Shirt", price_cents=15_00, variants=[{"name": "M", "stock": 3}])
    added = _ok(client.post(f"/api/products/{shirt.id}/variants", json={"name": "L", "sku": "TS-L", "stock": 2},
                            headers=admin_auth), 201)
    assert _is_uuid(added["id"])
    assert {k: added[k] for k in ("name", "sku", "price", "stock")} == \
        {"name": "L", "sku": "TS-L", "price": 15.0, "stock": 2}
    variants = _ok(client.get(f"/api/products/{shirt.id}"))["variants"]
    assert [(v["id"], v["name"]) for v in variants] == [(str(shirt.variants[0].id), "M"), (added["id"], "L")]

    path = f"/api/products/{shirt.id}/variants/{added['id']}"
    patched = _ok(client.patch(path, json={"price": 17.5, "stock": 4, "name": "Large"}, headers=admin_auth))
    assert {k: patched[k] for k in ("id", "name", "price", "stock")} == \
        {"id": added["id"], "name": "Large", "price": 17.5, "stock": 4}
    # Without its own price a variant takes the product's, also after the product's changes.
    assert _ok(client.patch(path, json={"price": None}, headers=admin_auth))["price"] == 15.0
    _ok(client.patch(f"/api/products/{shirt.id}", json={"price": 16}, headers=admin_auth))
    assert [v["price"] for v in _ok(client.get(f"/api/products/{shirt.id}"))["variants"]] == [16.0, 16.0]


def test_variant_routes_404(client, make, admin_auth):
    shirt = make.product("T-Shirt", variants=[{"name": "M", "stock": 3}])
    mug = make.product("Mug", variants=[{"name": "White", "stock": 3}])
    _error(client.post(f"/api/products/{uuid.uuid4()}/variants", json={"name": "L", "stock": 1},
                       headers=admin_auth), 404)
    _error(client.patch(f"/api/products/{shirt.id}/variants/{mug.variants[0].id}", json={"stock": 0},
                        headers=admin_auth), 404)
    _error(client.patch(f"/api/products/{shirt.id}/variants/{uuid.uuid4()}", json={"stock": 0},
                        headers=admin_auth), 404)
    assert _ok(client.get(f"/api/products/{mug.id}"))["variants"][0]["stock"] == 3


def test_duplicate_skus_are_409(client, admin_auth):
    created = _ok(client.post("/api/products", json=LAPTOP_STAND, headers=admin_auth), 201)
    _error(client.post("/api/products", json={"name": "Copy", "price": 1, "sku": "LS-1"}, headers=admin_auth), 409)
    _error(client.post(f"/api/products/{created['id']}/variants", json={"name": "Gold", "sku": "LS-1-S", "stock": 1},
                       headers=admin_auth), 409)
    black = created["variants"][1]["id"]
    _error(client.patch(f"/api/products/{created['id']}/variants/{black}", json={"sku": "LS-1-S"},
                        headers=admin_auth), 409)
    twins = {"name": "Twins", "price": 1, "variants": [{"name": "A", "sku": "TW", "stock": 1},
                                                       {"name": "B", "sku": "TW", "stock": 1}]}
    _error(client.post("/api/products", json=twins, headers=admin_auth), 409)
    assert _ok(client.get("/api/products"))["total"] == 1
    assert _ok(client.get(f"/api/products/{created['id']}")) == created


# --- delivery methods ----------------------------------------------------------------------------

def test_create_delivery_method_normalises_countries(client, admin_auth):
    body = {"name": "Express", "price": 9.99, "countries": ["USA", "Canada", "gb"], "maxWeightGrams": 5000,
            "cashOnDelivery": False, "active": True, "estimatedDays": 2}
    created = _ok(client.post("/api/delivery-methods", json=body, headers=admin_auth), 201)
    assert _is_uuid(created["id"])
    assert created == {**body, "countries": ["US", "CA", "GB"], "id": created["id"]}
    assert _ok(client.get("/api/delivery-methods")) == [created]


def test_delivery_method_defaults(client, admin_auth):
    created = _ok(client.post("/api/delivery-methods", json={"name": "Post", "price": 4}, headers=admin_auth), 201)
    assert {k: created[k] for k in ("countries", "cashOnDelivery", "active", "maxWeightGrams", "estimatedDays")} == \
        {"countries": [], "cashOnDelivery": True, "active": True, "maxWeightGrams": None, "estimatedDays": None}


def test_unknown_country_is_400(client, admin_auth):
    body = {"name": "Ferry", "price": 1, "countries": ["US", "Atlantis"]}
    payload = _error(client.post("/api/delivery-methods", json=body, headers=admin_auth), 400)
    assert payload["message"] == INVALID and "countries" in payload["errors"]
    assert _ok(client.get("/api/delivery-methods")) == []


@pytest.fixture
def methods(make):
    return {
        "north-america": make.delivery_method("North America", price_cents=5_00, countries=["US", "CA"]),
        "everywhere": make.delivery_method("Worldwide", price_cents=20_00, countries=[]),
        "europe": make.delivery_method("Europe", price_cents=7_00, countries=["DE", "FR"]),
        "retired": make.delivery_method("Retired", price_cents=1_00, countries=[], active=False),
    }


@pytest.mark.parametrize("country", ["United States", "US", "USA", "us"])
def test_delivery_methods_filtered_by_country(client, methods, country):
    listed = _ok(client.get("/api/delivery-methods", query_string={"country": country}))
    assert {m["name"] for m in listed} == {"North America", "Worldwide"}


def test_delivery_methods_without_filter_lists_active_ones(client, methods):
    assert {m["name"] for m in _ok(client.get("/api/delivery-methods"))} == {"North America", "Worldwide", "Europe"}


def test_unknown_filter_country_is_400(client, methods):
    payload = _error(client.get("/api/delivery-methods?country=Atlantis"), 400)
    assert "country" in payload["errors"]


def test_patch_delivery_method(client, methods, admin_auth):
    europe = methods["europe"]
    changes = {"name": "EU", "price": 6.5, "countries": ["Germany", "AUT"], "maxWeightGrams": 30000,
               "cashOnDelivery": False, "estimatedDays": 4}
    patched = _ok(client.patch(f"/api/delivery-methods/{europe.id}", json=changes, headers=admin_auth))
    assert patched == {**changes, "countries": ["DE", "AT"], "id": str(europe.id), "active": True}
    assert {m["name"] for m in _ok(client.get("/api/delivery-methods?country=Austria"))} == {"EU", "Worldwide"}

    _ok(client.patch(f"/api/delivery-methods/{europe.id}", json={"active": False}, headers=admin_auth))
    assert "EU" not in {m["name"] for m in _ok(client.get("/api/delivery-methods"))}
    _error(client.patch(f"/api/delivery-methods/{uuid.uuid4()}", json={"price": 1}, headers=admin_auth), 404)
    payload = _error(client.patch(f"/api/delivery-methods/{europe.id}", json={"countries": ["Atlantis"]},
                                  headers=admin_auth), 400)
    assert "countries" in payload["errors"]


# --- validation ----------------------------------------------------------------------------------

@pytest.fixture
def targets(make):
    shirt = make.product("T-Shirt", price_cents=15_00, stock=5, variants=[{"name": "M", "stock": 3}])
    method = make.delivery_method("Standard", price_cents=5_00)
    return {"product": f"/api/products/{shirt.id}", "variants": f"/api/products/{shirt.id}/variants",
            "variant": f"/api/products/{shirt.id}/variants/{shirt.variants[0].id}",
            "method": f"/api/delivery-methods/{method.id}"}, shirt


BAD_WRITES = [
    ("product-price-3-decimals", "POST", "/api/products", {"name": "X", "price": 1.999}, "price"),
    ("product-price-negative", "POST", "/api/products", {"name": "X", "price": -1}, "price"),
    ("product-price-string", "POST", "/api/products", {"name": "X", "price": "1.99"}, "price"),
    ("product-price-missing", "POST", "/api/products", {"name": "X"}, "price"),
    ("product-stock-negative", "POST", "/api/products", {"name": "X", "price": 1, "stock": -1}, "stock"),
    ("product-stock-float", "POST", "/api/products", {"name": "X", "price": 1, "stock": 1.5}, "stock"),
    ("product-name-with-nul", "POST", "/api/products", {"name": "Lamp\u0000", "price": 1}, "name"),
    ("patch-product-description-with-nul", "PATCH", "{product}", {"description": "a\u0000b"}, "description"),
    ("product-unknown-field", "POST", "/api/products", {"name": "X", "price": 1, "colour": "red"}, "colour"),
    ("variant-price-3-decimals", "POST", "{variants}", {"name": "L", "price": 0.001, "stock": 1}, "price"),
    ("variant-stock-negative", "POST", "{variants}", {"name": "L", "stock": -1}, "stock"),
    ("patch-product-price-3-decimals", "PATCH", "{product}", {"price": 15.005}, "price"),
    ("patch-product-stock-negative", "PATCH", "{product}", {"stock": -1}, "stock"),
    ("patch-product-price-null", "PATCH", "{product}", {"price": None}, "price"),
    ("patch-variant-stock-negative", "PATCH", "{variant}", {"stock": -3}, "stock"),
    ("patch-variant-price-3-decimals", "PATCH", "{variant}", {"price": 9.999}, "price"),
    ("method-price-3-decimals", "POST", "/api/delivery-methods", {"name": "X", "price": 4.999}, "price"),
    ("method-countries-string", "POST", "/api/delivery-methods", {"name": "X", "price": 4, "countries": "US"},
     "countries"),
    ("method-name-with-nul", "POST", "/api/delivery-methods", {"name": "Post\u0000", "price": 4}, "name"),
    ("patch-method-price-negative", "PATCH", "{method}", {"price": -0.01}, "price"),
    ("product-active-string", "POST", "/api/products", {"name": "X", "price": 1, "active": "yes"}, "active"),
    ("patch-product-active-number", "PATCH", "{product}", {"active": 0}, "active"),
    ("method-cash-on-delivery-string", "POST", "/api/delivery-methods",
     {"name": "X", "price": 4, "cashOnDelivery": "false"}, "cashOnDelivery"),
    ("product-name-lone-surrogate", "POST", "/api/products", {"name": "Lamp\udc00", "price": 1}, "name"),
    ("patch-variant-name-lone-surrogate", "PATCH", "{variant}", {"name": "\ud800"}, "name"),
    ("method-country-lone-surrogate", "POST", "/api/delivery-methods",
     {"name": "X", "price": 4, "countries": ["\ud800"]}, "countries"),
]


@pytest.mark.parametrize("method, path, body, field", [c[1:] for c in BAD_WRITES], ids=[c[0] for c in BAD_WRITES])
def test_invalid_catalog_writes_are_400(client, admin_auth, targets, method, path, body, field):
    paths, shirt = targets
    before = _ok(client.get(f"/api/products/{shirt.id}")), _ok(client.get("/api/delivery-methods"))
    payload = _error(client.open(path.format(**paths), method=method, json=body, headers=admin_auth), 400)
    assert payload["message"] == INVALID
    assert field in payload["errors"]
    assert (_ok(client.get(f"/api/products/{shirt.id}")), _ok(client.get("/api/delivery-methods"))) == before
    assert _ok(client.get("/api/products"))["total"] == 1
