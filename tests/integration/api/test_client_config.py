"""GET /api/config (docs/api.md, "Storefront configuration"): what a browser needs to load Stripe.js and pay,
from where it really is."""
import requests


def test_config_is_public_and_names_what_stripe_js_needs(client, settings):
    response = client.get("/api/config")
    assert response.status_code == 200
    assert response.json == {"publishableKey": settings.stripe_publishable_key, "currency": "USD",
                             "stripeJsUrl": f"{settings.stripe_api_base}/js.stripe.com/v3/"}
    assert response.json["publishableKey"].startswith("pk_")


def test_the_url_it_names_serves_stripe_js(client):
    url = client.get("/api/config").json["stripeJsUrl"]
    script = requests.get(url, timeout=10)
    assert script.status_code == 200
    assert "javascript" in script.headers["Content-Type"]
    # what the storefront calls on it
    assert all(name in script.text for name in ("confirmCardSetup", "confirmCardPayment", "elements"))


def test_emulator_routes_exist_only_with_the_emulator(client, runtime, make):
    import dataclasses

    from orders_service.app import create_app
    from orders_service.runtime import Runtime

    _, auth = make.shopper()
    assert client.post("/api/emulator/setup-intents", headers=auth).status_code == 201
    real = Runtime(dataclasses.replace(runtime.settings, stripe_api_base=None, stripe_emulator=False,
                                       stripe_secret_key="sk_live_x"),
                   db_pool_size=1)
    try:
        stripe_own = create_app(runtime=real).test_client()
        assert stripe_own.get("/api/config").json["stripeJsUrl"] == "https://js.stripe.com/v3/"
        answer = stripe_own.post("/api/emulator/setup-intents", headers=auth)
        assert answer.status_code == 404 and answer.json["code"] == 404
    finally:
        real.dispose()
