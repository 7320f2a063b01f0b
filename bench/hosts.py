"""The `hosts` scenario: the deployment of docs/operations.md ("Several hosts") on this one machine, as the
tests build it (tests/support/hosts.py): two hosts, each a network namespace running the Procfile's `web`
and `worker`, HAProxy in front (deploy/haproxy.cfg), PgBouncer in front of PostgreSQL, one Redis.

1. **throughput**: cash-on-delivery orders/s at each level, in the same run:
   `direct` (the Procfile's web on this machine, straight to PostgreSQL, as in `cod`), `pooler` (host 1's
   web called directly, through PgBouncer), `1 host` (through HAProxy, host 2 disabled at HAProxy) and
   `2 hosts` (through HAProxy). Both hosts share these 2 cores: two cannot be faster than one here; what the
   rows show is what the balancer and the pooler cost, in CPU per order and in latency.
2. **a host's death**: shoppers placing orders through HAProxy, each asking again with the same
   `Idempotency-Key` after an error or a 3 s timeout (tests/support/load.py); host 2's cable pulled (its veth
   down: nothing answers, nothing is reset), then plugged back; host 1 SIGKILLed. For each: how long after
   the fault the last order that was in flight at that moment was answered, and that each answered order
   exists once.
"""
from __future__ import annotations

import functools
import os
import time

import psycopg
from driver import processes_cpu
from scenarios import Context, Table, cash_on_delivery_direct, measure
from stack import log
from workload import ADDRESS, CASH_ON_DELIVERY, HttpOrders

from tests.support.hosts import HostsStack, Network, missing_tools
from tests.support.load import Load, Shopper

DEATH_LOAD_SECONDS = 3.0  # before the fault
AFTER_DEATH_SECONDS = 10.0  # of load after it: longer than HAProxy takes to mark a silent host down (3 x 2 s)
SHOPPERS = 8
# How long shoppers may wait for their last answers before the host comes back (its cable plugged in again).
MEND_AFTER_SECONDS = 20.0


def _session_meter(*pids: int):
    return lambda: processes_cpu(lambda _pid, session: session in pids)


def _shoppers(ctx: Context) -> list[Shopper]:
    shoppers = []
    for n in range(SHOPPERS):
        customer_id, token = ctx.fixture.customers[n % len(ctx.fixture.customers)]
        body = {"customerId": str(customer_id), "deliveryMethodId": str(ctx.fixture.delivery_method_id),
                "deliveryAddress": ADDRESS,
                "items": [{"productId": str(ctx.fixture.product_ids[n % len(ctx.fixture.product_ids)]),
                           "quantity": 1}]}
        shoppers.append(Shopper({"Authorization": f"Bearer {token}"}, body))
    return shoppers


def _fault(deployment: HostsStack, ctx: Context, label: str, cut, mend=None) -> dict:
    """Orders through HAProxy; `cut()` after a few seconds; how long until every order in flight then was
    answered, and whether each answered order exists once."""
    load = Load(deployment.url, _shoppers(ctx), stripe_emulator=None, online_share=0.0).start()
    time.sleep(DEATH_LOAD_SECONDS)
    at = time.monotonic()
    cut()
    time.sleep(AFTER_DEATH_SECONDS)
    waiting = load.stop(grace=MEND_AFTER_SECONDS, check=False)
    if mend:  # the host is back: what it held is released, whatever still waited for it is answered
        mend()
    load.stop(grace=60.0)
    in_flight = [p for p in load.placed if p.started <= at < p.at]
    ids = [p.order_id for p in load.placed]
    with psycopg.connect(deployment.database_url.replace("+psycopg", ""), autocommit=True) as db:
        found = db.execute("SELECT count(*) FROM orders WHERE id::text = ANY(%s)", (ids,)).fetchone()[0]
    errors = [e for s in load.shoppers for e in s.errors]
    result = {
        "fault": label, "in_flight": len(in_flight), "waiting_until_mended": waiting,
        "accounted_after_s": round(max((p.at - at for p in in_flight), default=0.0), 2),
        "orders": len(ids), "orders_found_once": found == len(set(ids)) == len(ids),
        "retries": sorted(set(load.retried_between(at, at + AFTER_DEATH_SECONDS))), "errors": errors[:5],
        "served_after": len(load.successes_between(at + 1, at + AFTER_DEATH_SECONDS)),
    }
    log(f"  {label}: {result['in_flight']} orders in flight, the last answered {result['accounted_after_s']} s "
        f"after ({waiting} still waiting {AFTER_DEATH_SECONDS + MEND_AFTER_SECONDS:g} s after, until the host "
        f"was back); {result['orders']} orders, each found once: {result['orders_found_once']}")
    return result


def hosts(ctx: Context) -> list[Table]:
    if reason := missing_tools():
        log(f"hosts: skipped: {reason}")
        return []
    levels, seconds = ctx.args.hosts_levels, ctx.args.duration
    log(f"hosts: POST {CASH_ON_DELIVERY.path} directly, then through PgBouncer and HAProxy to one and two hosts")
    direct = cash_on_delivery_direct(ctx, "direct", levels)
    network = Network(hosts=2)
    try:
        # The Procfile's defaults, as the direct web has them, and its pool (18 a process) on each host.
        deployment = HostsStack(ctx.env, network, "http://127.0.0.1:9", database=ctx.conninfo.rsplit("/", 1)[1],
                                WEB_CONCURRENCY="2", WEB_THREADS="48", DB_POOL_SIZE="18")
        try:
            webs = [h.procs["web"].pid for h in deployment.hosts]
            around = {"worker": _session_meter(*(h.procs["worker"].pid for h in deployment.hosts)),
                      "balancer": _session_meter(deployment.haproxy.pid),
                      "pgbouncer": _session_meter(deployment.pgbouncer.proc.pid), **ctx.meters()}
            first = deployment.hosts[0]
            pooled = measure("pooler", functools.partial(HttpOrders, first.port, CASH_ON_DELIVERY, ctx.fixture,
                                                         host=first.address),
                             levels, ctx, {"web": _session_meter(webs[0]), **around})
            through = functools.partial(HttpOrders, deployment.haproxy_port, CASH_ON_DELIVERY, ctx.fixture)
            deployment.haproxy_command("disable server web/web2")
            one = measure("1 host", through, levels, ctx, {"web": _session_meter(webs[0]), **around})
            deployment.haproxy_command("enable server web/web2")
            stack_wait(lambda: deployment.backends()["web2"]["status"] == "UP")
            two = measure("2 hosts", through, levels, ctx, {"web": _session_meter(*webs), **around})

            log("hosts: a host's death under load")
            faults = [
                _fault(deployment, ctx, "host 2's cable pulled", lambda: network.link(2, up=False),
                       lambda: network.link(2, up=True)),
            ]
            stack_wait(lambda: deployment.backends()["web2"]["status"] == "UP")
            faults.append(_fault(deployment, ctx, "host 1 SIGKILLed", first.kill))
        finally:
            deployment.close()
    finally:
        network.close()

    def ratio_note(name, results):
        return f"{name} / direct, orders/s: " + "   ".join(
            f"conc {r.concurrency}: {r.per_second / d.per_second:.2f}" for r, d in zip(results, direct, strict=True))
    notes = [ratio_note("pooler", pooled), ratio_note("1 host", one), ratio_note("2 hosts", two),
             "both hosts share this machine's cores: two cannot be faster than one here"]
    for fault in faults:
        notes.append(f"{fault['fault']}: {fault['in_flight']} orders in flight; the last answered "
                     f"{fault['accounted_after_s']} s after ({fault['waiting_until_mended']} shoppers still "
                     f"waiting until the host was back); {fault['orders']} orders answered, each found once: "
                     f"{fault['orders_found_once']}; retried on: {', '.join(fault['retries']) or 'nothing'}")
    title = f"hosts: POST {CASH_ON_DELIVERY.path}, {seconds:g} s per level"
    return [
        Table("hosts", "direct", f"{title}, directly (Procfile web, PostgreSQL)", "order", direct),
        Table("hosts", "pooler", f"{title}, host 1's web directly, through PgBouncer", "order", pooled),
        Table("hosts", "one-host", f"{title}, through HAProxy and PgBouncer, host 2 disabled", "order", one),
        Table("hosts", "two-hosts", f"{title}, through HAProxy and PgBouncer, two hosts", "order", two,
              notes=notes, extra={"faults": faults, "cpus": os.cpu_count()}),
    ]


def stack_wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("HAProxy did not see the host up again")
        time.sleep(0.2)
