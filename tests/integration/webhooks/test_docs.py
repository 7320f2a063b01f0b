"""docs/webhooks.md holds: an example body for every type, in the shape the service sends, and a Python
receiver that verifies real deliveries (and refuses a forged one)."""
import json
import os
import re
from pathlib import Path

import pytest

from orders_service.orders.representation import OrderSchema
from orders_service.webhooks.events import EventTypes

DOC = (Path(__file__).resolve().parents[3] / "docs" / "webhooks.md").read_text()


def _examples() -> dict[str, dict]:
    section = DOC.split("## Examples", 1)[1]
    found = re.findall(r"### `([\w.]+)`\s+```json\n(.*?)\n```", section, re.S)
    bodies = {}
    for name, body in found:
        assert name not in bodies, f"two examples of {name}"
        bodies[name] = json.loads(body)
    return bodies


def test_every_type_has_an_example_in_the_shape_sent():
    examples = _examples()
    assert set(examples) == {*EventTypes.ORDER, EventTypes.PING}
    representation = set(OrderSchema().fields) | {f.data_key for f in OrderSchema().fields.values() if f.data_key}
    for name, event in examples.items():
        assert list(event) == ["id", "type", "timestamp", "sequence", "data"] and event["type"] == name
        assert event["id"].startswith("evt_")
        if name == EventTypes.PING:
            assert (event["data"], event["sequence"]) == ({}, None)
            continue
        assert list(event["data"]) == ["order", "orderSequence"] and isinstance(event["sequence"], int)
        assert set(event["data"]["order"]) <= representation, set(event["data"]["order"]) - representation
    for name in EventTypes.ORDER:  # each type is explained too
        assert f"| `{name}` |" in DOC


def _python_receiver() -> str:
    return re.search(r"In Python.*?```python\n(.*?)\n```", DOC, re.S).group(1)


@pytest.mark.slow
@pytest.mark.xdist_group("webhooks")
def test_the_python_receiver_verifies_a_real_delivery(webhook_stack, client, make, receiver, monkeypatch):
    _admin, admin_auth = make.admin()
    customer, auth = make.shopper()
    created = client.post("/api/admin/webhook-endpoints", json={"url": receiver.url}, headers=admin_auth).json
    body = make.order_body(customer, make.delivery_method(countries=[]), [(make.product(stock=5), 1)])
    assert client.post("/api/orders", json=body, headers=auth).status_code == 204
    [delivery] = receiver.wait_for(1, timeout=15)

    monkeypatch.setitem(os.environ, "ORDERS_WEBHOOK_SECRET", created["secret"])
    handled = []
    namespace = {"handle": handled.append, "__name__": "docs_webhooks_receiver"}
    exec(compile(_python_receiver(), "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own documentation
    doc_client = namespace["app"].test_client()
    headers = {name: value for name, value in delivery.headers.items() if name.startswith(("webhook-", "content-"))}

    assert doc_client.post("/hooks/orders", data=delivery.body, headers=headers).status_code == 204
    assert handled[0]["id"] == delivery.id and handled[0]["data"]["orderSequence"] == 1
    forged = delivery.body.replace(b'"status":"confirmed"', b'"status":"canceled"')
    assert forged != delivery.body
    assert doc_client.post("/hooks/orders", data=forged, headers=headers).status_code == 400
    assert len(handled) == 1
