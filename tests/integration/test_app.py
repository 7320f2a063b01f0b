"""Errors outside the routes, the OpenAPI document, the offline API docs and /healthz (docs/api.md)."""
import re

import pytest

# Every route of docs/api.md, as it writes them (path parameters as {…}).
API_ROUTES = [
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("GET", "/api/products"),
    ("GET", "/api/products/{productId}"),
    ("POST", "/api/products"),
    ("PATCH", "/api/products/{productId}"),
    ("POST", "/api/products/{productId}/variants"),
    ("PATCH", "/api/products/{productId}/variants/{variantId}"),
    ("GET", "/api/delivery-methods"),
    ("POST", "/api/delivery-methods"),
    ("PATCH", "/api/delivery-methods/{deliveryMethodId}"),
    ("POST", "/api/orders/with-payment"),
    ("POST", "/api/orders"),
    ("PATCH", "/api/orders/{orderId}/paid"),
    ("GET", "/api/orders"),
    ("GET", "/api/orders/{orderId}"),
    ("POST", "/api/orders/{orderId}/cancel"),
    ("PATCH", "/api/admin/orders/{orderId}"),
    ("POST", "/api/admin/orders/{orderId}/refunds"),
    ("POST", "/api/webhooks/stripe"),
    ("GET", "/api/config"),
]
OPERATIONS_ROUTES = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/api/openapi.json"),
                     ("GET", "/api/docs"), ("GET", "/shop/")]
PUBLIC = {("POST", "/api/auth/register"), ("POST", "/api/auth/login"), ("GET", "/api/products"),
          ("GET", "/api/products/{productId}"), ("GET", "/api/delivery-methods"), ("GET", "/api/config")}


def _shape(path: str) -> str:
    """/api/products/{productId} and /api/products/<uuid:product_id> → /api/products/{}"""
    return re.sub(r"\{[^}]*\}|<[^>]*>", "{}", path)


def _app_routes(app) -> set:
    return {(method, _shape(rule.rule)) for rule in app.url_map.iter_rules() for method in rule.methods}


def _error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.is_json
    assert response.json["code"] == status
    assert response.json["message"]
    return response.json


@pytest.mark.parametrize("path", ["/api/nothing-here", "/nothing-here", "/api/products/1/2/3"])
def test_unknown_route_is_json_404(client, path):
    assert _error(client.get(path), 404)["status"] == "Not Found"


def test_wrong_method_is_json_405_with_allow(client):
    payload = _error(client.delete("/api/products"), 405)
    assert payload["status"] == "Method Not Allowed"
    allowed = {m.strip() for m in client.delete("/api/products").headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed and "DELETE" not in allowed


def test_healthz(client):
    assert client.get("/healthz").status_code == 200


def test_every_contract_route_is_served_and_the_api_ones_documented(app, client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.json
    assert spec["openapi"].startswith("3.")
    documented = {(method.upper(), _shape(path)) for path, item in spec["paths"].items() for method in item
                  if method in ("get", "post", "put", "patch", "delete")}
    served = _app_routes(app)
    routes = {(m, _shape(p)) for m, p in [*API_ROUTES, *OPERATIONS_ROUTES]}
    assert routes - served == set()
    api = {(m, _shape(p)) for m, p in API_ROUTES}
    assert api - documented == set()


def test_openapi_documents_validation_errors_as_400_not_422(client):
    """docs/api.md, "Errors": validation answers 400; 422 is only for a reused Idempotency-Key."""
    spec = client.get("/api/openapi.json").json
    wrong = [f"{method.upper()} {path}" for path, item in spec["paths"].items() for method, op in item.items()
             if isinstance(op, dict) and "responses" in op and "422" in op["responses"]
             and not any(p.get("name") == "Idempotency-Key" for p in op.get("parameters", []))]
    assert wrong == []


def test_openapi_marks_public_routes_as_needing_no_token(client):
    spec = client.get("/api/openapi.json").json
    needing_token = []
    for method, path in PUBLIC:
        op = next(item[method.lower()] for p, item in spec["paths"].items()
                  if _shape(p) == _shape(path) and method.lower() in item)
        if op.get("security", spec.get("security")) not in (None, [], [{}]):
            needing_token.append(f"{method} {path}")
    assert needing_token == []


def test_docs_work_offline(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assets = re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", html, re.I)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
    remote = [a for a in assets if re.match(r"(?i)(https?:)?//", a)]
    assert remote == []
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert served.mimetype in ("text/javascript", "application/javascript", "text/css"), asset
        assert len(served.data) > (100 if "init" in asset else 1000), asset
    spec_urls = re.findall(r"data-spec-url=[\"']([^\"']+)[\"']", html)
    assert spec_urls and all(client.get(u).status_code == 200 for u in spec_urls), spec_urls


def test_the_document_names_path_parameters_as_the_contract_does(client):
    """`{orderId}`, not Flask's `{order_id}`: a generated client's arguments carry the contract's names."""
    spec = client.get("/api/openapi.json").json
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert set(API_ROUTES) <= documented
    for path, item in spec["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["name"] for p in item.get("parameters", []) if p.get("in") == "path"}
        assert declared == names, path
