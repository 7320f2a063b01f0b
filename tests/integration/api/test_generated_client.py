"""A client generated from /api/openapi.json (openapi-python-client) places the seed's orders (docs/api.md,
"Operations routes"): the names it gets are the documented ones, and `totalAmount` is a number."""
import importlib
import json
import shutil
import subprocess
import sys
import uuid

import pytest
import requests

PACKAGE = "orders_service_client"


@pytest.fixture(scope="module")
def generated(live_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated-client")
    (folder / "openapi.json").write_text(requests.get(f"{live_server}/api/openapi.json", timeout=10).text)
    # post_hooks: the generator would run ruff from PATH on its output; the test reads it as generated.
    (folder / "config.json").write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    generator = shutil.which("openapi-python-client", path=str(__import__("pathlib").Path(sys.executable).parent))
    done = subprocess.run([generator, "generate", "--path", "openapi.json", "--config", "config.json",
                           "--meta", "none", "--output-path", PACKAGE, "--fail-on-warning"],
                          cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_the_generated_client_places_the_seeds_with_payment_order(generated, live_server, make):
    from orders_service_client.api.orders import get_order, place_order, place_order_with_payment
    from orders_service_client.models import OrderIn, PaymentStarted

    customer, auth = make.shopper()
    headphones = make.product("Premium Headphones", price_cents=199_99, stock=10)
    case = make.product("Phone Case", price_cents=50_00, stock=10, variants=[{"name": "Black", "stock": 5}])
    method = make.delivery_method(price_cents=10_00)
    client = generated.AuthenticatedClient(base_url=live_server, token=auth["Authorization"].split()[1])
    seed = {  # the seed's example body, with this database's ids
        "customerId": str(customer.id), "deliveryMethodId": str(method.id),
        "deliveryAddress": {"street": "123 Main St", "city": "New York", "state": "NY", "zipCode": "10001",
                            "country": "USA"},
        "items": [{"productId": str(headphones.id), "quantity": 2, "variantId": None},
                  {"productId": str(case.id), "quantity": 1, "variantId": str(case.variants[0].id)}],
        "notes": "Please ring doorbell upon delivery",
    }

    started = place_order_with_payment.sync(client=client, body=OrderIn.from_dict(seed),
                                            idempotency_key=str(uuid.uuid4()))
    assert isinstance(started, PaymentStarted), started
    assert isinstance(started.total_amount, float) and started.total_amount == 459.98
    assert started.client_secret.startswith("pi_") and started.currency == "USD"

    order = get_order.sync(client=client, order_id=started.order_id)
    assert order.total_amount == 459.98 and order.items[0].unit_price == 199.99

    cash = place_order.sync_detailed(client=client, body=OrderIn.from_dict(dict(seed, items=seed["items"][:1])))
    assert cash.status_code == 204 and cash.headers["Location"].startswith("/api/orders/")


def test_the_generated_client_reads_the_apis_errors(generated, live_server, make):
    from orders_service_client.api.orders import place_order
    from orders_service_client.models import Error, OrderIn

    customer, auth = make.shopper()
    product = make.product(stock=1)
    method = make.delivery_method()
    client = generated.AuthenticatedClient(base_url=live_server, token=auth["Authorization"].split()[1])
    refused = place_order.sync(client=client, body=OrderIn.from_dict(make.order_body(customer, method,
                                                                                      [(product, 2)])))
    assert isinstance(refused, Error) and refused.code == 400
    assert refused.message == "Product 'Premium Headphones' has insufficient stock. Available: 1, Requested: 2"
