"""CORS (docs/api.md, "Conventions"): a page on a listed origin may call /api from a browser; any other origin
gets nothing."""
import dataclasses

import pytest

SHOP = "https://shop.example.com"


@pytest.fixture(scope="module")
def cors_client(runtime):
    from orders_service.app import create_app
    from orders_service.runtime import Runtime

    listed = Runtime(dataclasses.replace(runtime.settings, cors_origins=(SHOP, "http://localhost:3000")),
                     db_pool_size=2)
    app = create_app(runtime=listed)
    yield app.test_client()
    listed.dispose()


def _cors(response) -> dict:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def _preflight(client, path, origin, method="POST"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": "authorization, content-type, "
                                                                           "idempotency-key"})


def test_a_listed_origin_gets_a_preflight_for_the_routes_methods_and_headers(cors_client):
    response = _preflight(cors_client, "/api/orders/with-payment", SHOP)
    assert response.status_code == 200
    headers = _cors(response)
    assert headers["Access-Control-Allow-Origin"] == SHOP
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    methods = {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")}
    assert "POST" in methods and not {"PATCH", "DELETE", "PUT"} & methods  # the route's own methods

    paid = _cors(_preflight(cors_client, "/api/orders/5b0c4a52-6d0c-4a8e-9a51-0e3b8e9d7f10/paid", SHOP, "PATCH"))
    assert "PATCH" in paid["Access-Control-Allow-Methods"]


def test_a_listed_origin_can_read_the_response_and_its_location(cors_client, make):
    customer, auth = make.shopper()
    product = make.product(stock=5)
    method = make.delivery_method()
    response = cors_client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]),
                                headers={**auth, "Origin": SHOP})
    assert response.status_code == 204, response.get_data(as_text=True)
    headers = _cors(response)
    assert headers["Access-Control-Allow-Origin"] == SHOP
    exposed = {h.strip().lower() for h in headers["Access-Control-Expose-Headers"].split(",")}
    assert {"location", "x-request-id"} <= exposed
    assert response.headers["Location"].startswith("/api/orders/")
    assert _cors(cors_client.get("/api/products", headers={"Origin": "http://localhost:3000"}))[
        "Access-Control-Allow-Origin"] == "http://localhost:3000"


@pytest.mark.parametrize("origin", ["https://evil.example.com", "https://shop.example.com.evil.example",
                                    "http://shop.example.com"])
def test_another_origin_gets_no_cors_headers(cors_client, origin):
    assert _cors(_preflight(cors_client, "/api/orders", origin)) == {}
    assert _cors(cors_client.get("/api/products", headers={"Origin": origin})) == {}


def test_only_api_routes_answer_cross_origin(cors_client):
    assert _cors(cors_client.get("/healthz", headers={"Origin": SHOP})) == {}
    assert _cors(cors_client.get("/shop/", headers={"Origin": SHOP})) == {}


def test_without_cors_origins_no_origin_gets_cors_headers(client):
    assert _cors(_preflight(client, "/api/orders", SHOP)) == {}
    assert _cors(client.get("/api/products", headers={"Origin": SHOP})) == {}


@pytest.fixture
def pattern_client(runtime):
    """An app handed origins that look like patterns (CORS_ORIGINS refuses them at start-up: tests/unit/
    test_config.py): each is still matched as itself, never read as a regular expression."""
    from orders_service.app import create_app
    from orders_service.runtime import Runtime

    listed = Runtime(dataclasses.replace(runtime.settings, cors_origins=("https://*.example.com", "http://[::1]:3000")),
                     db_pool_size=1)
    yield create_app(runtime=listed).test_client()
    listed.dispose()


@pytest.mark.parametrize("origin", ["https://aexample.com.attacker.net", "https://shop.example.com",
                                    "https:///example.com", "http://:3000", "http://1:3000"])
def test_an_origin_that_looks_like_a_pattern_lets_in_no_other_origin(pattern_client, origin):
    assert _cors(_preflight(pattern_client, "/api/orders", origin)) == {}
    assert _cors(pattern_client.get("/api/products", headers={"Origin": origin})) == {}


def test_an_ipv6_origin_is_matched_exactly(pattern_client):
    assert _cors(pattern_client.get("/api/products", headers={"Origin": "http://[::1]:3000"}))[
        "Access-Control-Allow-Origin"] == "http://[::1]:3000"
