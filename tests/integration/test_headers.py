"""Browser headers: `X-Content-Type-Options: nosniff` on every response, and a Content-Security-Policy on
the pages the service serves that still lets them work offline (no inline script, only our own files
and Stripe.js's origin)."""
import dataclasses
import shutil
import subprocess

import pytest

from orders_service.api.headers import content_security_policies


@pytest.mark.parametrize("method, path", [
    ("get", "/healthz"), ("get", "/metrics"), ("get", "/api/products"), ("get", "/api/openapi.json"),
    ("get", "/api/docs"), ("get", "/api/docs/assets/swagger-ui-bundle.js"), ("get", "/nothing-here"),
    ("post", "/api/auth/login"), ("get", "/api/orders"),
])
def test_every_response_says_nosniff(client, method, path):
    response = getattr(client, method)(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff", (path, response.status_code)


def _directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def test_the_docs_page_has_a_policy_without_inline_script(client):
    response = client.get("/api/docs")
    policy = _directives(response.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"] and policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    html = response.get_data(as_text=True)
    assert "<script>" not in html.replace(" ", "")  # every script is a file the policy allows
    assert "Content-Security-Policy" not in client.get("/api/products").headers  # JSON needs none


@pytest.mark.parametrize("api_base, origin", [
    (None, "https://js.stripe.com"),
    ("http://127.0.0.1:8420", "http://127.0.0.1:8420"),
], ids=["stripe", "emulator"])
def test_the_storefront_policy_allows_stripe_js_only(settings, api_base, origin):
    emulated = dataclasses.replace(settings, stripe_api_base=api_base, stripe_emulator=api_base is not None)
    shop = _directives(content_security_policies(emulated)["/shop"])
    assert shop["script-src"] == ["'self'", origin]
    assert origin in shop["frame-src"] and "'self'" in shop["connect-src"]
    assert all("'unsafe-inline'" not in shop[d] for d in ("script-src", "default-src"))


def test_the_storefront_gets_its_policy_by_path(client, settings):
    """The storefront's files are issue 13's; whatever is served under /shop/ carries the policy."""
    response = client.get("/shop/")
    assert response.headers["Content-Security-Policy"] == content_security_policies(settings)["/shop"]
    assert "Content-Security-Policy" not in client.get("/shopping").headers


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.xdist_group("live_server")
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
def test_the_docs_render_in_a_browser_under_their_policy(live_server, tmp_path):
    """Headless Chromium enforces the policy: Swagger UI renders the operations only if every script ran."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
         "--virtual-time-budget=15000", "--dump-dom", f"{live_server}/api/docs"],
        capture_output=True, text=True, timeout=120)
    dom = result.stdout
    assert 'class="swagger-ui"' in dom, (result.stderr[-2000:], dom[:2000])
    assert "opblock" in dom and "/api/orders/with-payment" in dom, dom[:3000]  # the operations, listed
