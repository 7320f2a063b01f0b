"""The two-host deployment (tests/support/hosts.py) that these tests share, its shop, and the checks every
test makes of the books after a fault."""
from __future__ import annotations

import dataclasses

import psycopg
import pytest
import requests

from tests.support.factories import Make
from tests.support.hosts import HostsStack, Network, missing_tools
from tests.support.load import Shopper
from tests.support.processes import stop_process, wait_until
from tests.support.receiver import Receiver
from tests.support.stripe import WEBHOOK_SECRET
from tests.support.stripe_proxy import RealStripe

HOT_STOCK = 100_000
SHOPPERS = 4


@dataclasses.dataclass
class Deployment:
    stack: HostsStack
    stripe: RealStripe
    stripe_emulator: object  # localstripe itself, where shoppers pay as Stripe.js would
    receiver: Receiver
    make: Make
    admin: dict
    products: list
    method: object

    def shoppers(self, count: int = SHOPPERS) -> list[Shopper]:
        """Shoppers of their own, each order taking one of every hot product (all orders meet on them)."""
        made = []
        for _ in range(count):
            customer, auth = self.make.shopper()
            made.append(Shopper(auth, self.make.order_body(customer, self.method, [(p, 1) for p in self.products])))
        return made

    def heal(self) -> None:
        """Every host thawed, plugged in and running web and worker again, beat on the second host only,
        Stripe's webhooks flowing, each host up at HAProxy: what a test that failed half-way left behind."""
        stack = self.stack
        self.stripe.drop_webhooks = False
        for host in stack.hosts:
            host.thaw()
            stack.network.link(host.n, up=True)
            if host is not stack.hosts[1] and "beat" in host.procs:
                stop_process(host.procs.pop("beat"))
            if host.overrides or any(name not in host.procs or host.procs[name].poll() is not None
                                     for name in ("web", "worker")):
                stack.restart(host)
            stack.haproxy_command(f"enable server web/web{host.n}")
        wait_until(lambda: all(b["status"] == "UP" for b in stack.backends().values()), timeout=30)

    def sql(self, query: str, *params) -> list[tuple]:
        """The rows of `query` (none for a statement that returns none), on the database directly."""
        with psycopg.connect(self.stack.database_url.replace("+psycopg", ""), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="module")
def deployment(base_env, stripe_emulator):
    """Two hosts (web + worker each), `beat` on the second, HAProxy, PgBouncer, Redis; Stripe's webhooks go
    to HAProxy; an outbound webhook endpoint subscribed to every order event."""
    if reason := missing_tools():
        pytest.skip(reason)
    from orders_service.app import create_app
    from orders_service.config import Settings
    from orders_service.runtime import Runtime

    closers = []
    try:
        network = Network(hosts=2)
        closers.append(network.close)
        stripe = RealStripe(stripe_emulator.url, host=network.services).start()
        closers.append(stripe.stop)
        receiver = Receiver(host=network.services)
        closers.append(receiver.close)
        # Periodic jobs every 2 s, acting on young orders: what would take minutes takes seconds.
        stack = HostsStack(base_env, network, stripe.url, MAINTENANCE_INTERVAL_SECONDS="2",
                           NOTIFICATION_INTERVAL_SECONDS="2", RECONCILE_AFTER_SECONDS="5",
                           REDRIVE_AFTER_SECONDS="3", ORDER_PAYMENT_TTL_SECONDS="20")
        closers.append(stack.close)
        stack.start_beat(stack.hosts[1])
        stripe.forward_webhooks_to(f"{stack.url}/api/webhooks/stripe", WEBHOOK_SECRET)
        runtime = Runtime(Settings.from_env(dict(stack.env, DATABASE_URL=stack.database_url, DB_POOL_SIZE="2")))
        closers.append(runtime.dispose)
        make = Make(create_app(runtime=runtime), runtime.session_factory)
        _admin, admin = make.admin()
        answer = requests.post(f"{stack.url}/api/admin/webhook-endpoints", json={"url": receiver.url},
                               headers=admin, timeout=30)
        assert answer.status_code == 201, answer.text
        products = [make.product(name=f"Hot {n}", price_cents=20_00, stock=HOT_STOCK) for n in range(2)]
        method = make.delivery_method(countries=[])
        yield Deployment(stack, stripe, stripe_emulator, receiver, make, admin, products, method)
    finally:
        while closers:
            closers.pop()()


@pytest.fixture
def hosts(deployment):
    """The deployment, whole before the test and again after it."""
    deployment.heal()
    yield deployment
    deployment.heal()


def check_books(deployment: Deployment, load, timeout: float = 90.0) -> dict:
    """What must hold after any fault, once the system has settled (waited for, up to `timeout`):

    - every order a client got a 2xx for exists, once (one order per Idempotency-Key);
    - any other order of these shoppers is closed (a with-payment order whose payment could not start);
    - every PaymentIntent the shoppers paid has its order confirmed and paid, with one payment_succeeded;
    - stock + the quantities orders hold == the initial stock, for each product;
    - every outbound event of these orders reached the receiver at least once.
    Returns figures for the test's message."""
    placed = load.placed
    customers = [s.body["customerId"] for s in load.shoppers]
    order_ids = [p.order_id for p in placed]
    rows = dict((str(i), (s, ps)) for i, s, ps in deployment.sql(
        "SELECT id, status, payment_status FROM orders WHERE customer_id::text = ANY(%s)", customers))
    assert set(order_ids) <= set(rows), "an order a client was given is missing"
    assert len(order_ids) == len(set(order_ids)), "two answers named one order"
    keys = deployment.sql("SELECT key, count(*) FROM idempotency_records WHERE customer_id::text = ANY(%s) "
                          "GROUP BY key HAVING count(*) > 1", customers)
    assert keys == []
    by_key = dict((k, str(o)) for k, o in deployment.sql(
        "SELECT key, order_id FROM idempotency_records WHERE customer_id::text = ANY(%s)", customers))
    assert all(by_key[p.key] == p.order_id for p in placed), "a key names another order than its answer"
    unanswered = {i: s for i, (s, _ps) in rows.items() if i not in set(order_ids)}
    assert all(s in ("canceled", "expired") for s in unanswered.values()), unanswered

    paid = [p.order_id for p in placed if p.paid]

    def confirmed():
        states = dict((str(i), (s, ps)) for i, s, ps in deployment.sql(
            "SELECT id, status, payment_status FROM orders WHERE id::text = ANY(%s)", paid))
        return all(states[i] == ("confirmed", "paid") for i in paid)
    wait_until(confirmed, timeout=timeout, interval=0.5, message=lambda: "paid orders not all confirmed")
    twice = deployment.sql("SELECT order_id, count(*) FROM order_events WHERE type = 'payment_succeeded' "
                           "AND order_id::text = ANY(%s) GROUP BY order_id HAVING count(*) <> 1", paid)
    assert twice == [], "a payment applied twice (or not at all)"

    for product in deployment.products:
        [(stock,)] = deployment.sql("SELECT stock FROM products WHERE id = %s", product.id)
        [(held,)] = deployment.sql(
            "SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id "
            "WHERE i.product_id = %s AND o.status NOT IN ('canceled', 'expired')", product.id)
        assert stock + held == HOT_STOCK, (product.name, stock, held)

    all_orders = list(rows)

    def delivered():
        events = {e for (e,) in deployment.sql(
            "SELECT id FROM outbound_events WHERE order_id::text = ANY(%s)", all_orders)}
        missing = events - {r.id for r in deployment.receiver.requests()}
        return (events and not missing, len(events), len(missing))
    wait_until(lambda: delivered()[0], timeout=timeout, interval=0.5,
               message=lambda: "outbound events not delivered: %s of %s missing" % delivered()[:0:-1])
    return {"orders": len(order_ids), "paid": len(paid), "retries": sum(s.retries for s in load.shoppers),
            "closed unanswered": len(unanswered)}
