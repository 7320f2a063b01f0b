"""`orders-service …`: migrate, seed demo data, mint a token, run the whole stack for development."""
from __future__ import annotations

import errno
import ipaddress
import json
import os
import shlex
import shutil
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import click

from orders_service.config import DEV_STRIPE_KEY, PROJECT_ROOT, Settings

DEMO_TOKEN_LIFETIME = timedelta(hours=24)


def _app():
    from orders_service.app import create_app

    return create_app()


def _runtime(app):
    return app.extensions["orders.runtime"]


def _session(app):
    return _runtime(app).session_factory()


@click.group()
def main():
    """orders-service operator commands."""


@main.command()
def migrate():
    """Apply every Alembic migration to DATABASE_URL (idempotent)."""
    from orders_service.migrate import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url, settings.db_pooler)
    click.echo("database is at the latest migration")


@main.command()
def seed():
    """Create the demo catalog, delivery methods, customer and admin (once)."""
    from orders_service.demo import seed_demo

    app = _app()
    demo = seed_demo(_session(app), _runtime(app).passwords)
    click.echo(f"demo customer {demo.customer.email} ({demo.customer.id}); admin {demo.admin.email}")


@main.command()
@click.option("--customer", "customer_id", help="customer id (UUID) to mint an access token for")
@click.option("--admin", is_flag=True, help="mint an admin token (the demo admin account)")
@click.option("--hours", default=24, show_default=True, help="lifetime of the token")
def token(customer_id, admin, hours):
    """Print an access token for a customer, or for the admin."""
    from sqlalchemy import select

    from orders_service.api.security import mint_access_token
    from orders_service.auth.models import Customer, Role
    from orders_service.auth.service import ensure_customer
    from orders_service.demo import ADMIN_EMAIL

    if bool(customer_id) == admin:
        raise click.UsageError("give exactly one of --customer ID or --admin")
    app = _app()
    session = _session(app)
    if admin:
        customer = ensure_customer(session, _runtime(app).passwords, ADMIN_EMAIL, "Shop Admin", role=Role.ADMIN)
    else:
        try:
            cid = uuid.UUID(customer_id)
        except ValueError:
            raise click.BadParameter("not a UUID", param_hint="--customer") from None
        with session.begin():
            customer = session.scalar(select(Customer).where(Customer.id == cid))
        if customer is None:
            raise click.ClickException(f"no customer {cid}")
    with app.app_context():
        click.echo(mint_access_token(customer.id, customer.role, timedelta(hours=hours)))


def try_it_guide(base_url: str, settings: Settings) -> str:
    """The commands `make run` prints, with the demo's real ids and a fresh token."""
    from orders_service.api.security import mint_access_token
    from orders_service.demo import seed_demo

    app = _app()
    demo = seed_demo(_session(app), _runtime(app).passwords)
    with app.app_context():
        token = mint_access_token(demo.customer.id, demo.customer.role, DEMO_TOKEN_LIFETIME)
    body = {
        "customerId": str(demo.customer.id),
        "deliveryMethodId": str(demo.standard.id),
        "deliveryAddress": {"street": "123 Main St", "city": "New York", "state": "NY",
                            "zipCode": "10001", "country": "USA"},
        "items": [{"productId": str(demo.headphones.id), "quantity": 1}],
    }
    online_body = dict(body, items=[
        {"productId": str(demo.headphones.id), "quantity": 2},
        {"productId": str(demo.phone_case.id), "quantity": 1, "variantId": str(demo.phone_case.variants[0].id)},
    ], notes="Please ring doorbell upon delivery")
    stripe = f'-u {settings.stripe_secret_key}: "{settings.stripe_api_base}/v1/payment_intents/$PI'
    cash_on_delivery_flow = [
        "# --- try it: a cash-on-delivery order (paste into a shell) ---",
        f"TOKEN={token}",
        f'LOCATION=$(curl -s -D - -o /dev/null -X POST "{base_url}/api/orders" '
        f'-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d {shlex.quote(json.dumps(body))} '
        "| sed -n 's/^[Ll]ocation: *//p' | tr -d '\\r')",
        'echo "created $LOCATION"',
        f'curl -s "{base_url}$LOCATION" -H "Authorization: Bearer $TOKEN"; echo',
        "# --- end ---",
        "",
    ]
    online_flow = [
        "# --- try it: an online payment, paid with a test card at the Stripe emulator ---",
        f"TOKEN={token}",
        f'RESPONSE=$(curl -s -X POST "{base_url}/api/orders/with-payment" -H "Authorization: Bearer $TOKEN" '
        f'-H "Content-Type: application/json" -d {shlex.quote(json.dumps(online_body))})',
        'echo "$RESPONSE"',
        "ORDER_ID=$(echo \"$RESPONSE\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"orderId\"])')",
        "PI=$(echo \"$RESPONSE\" | python3 -c "
        "'import json,sys; print(json.load(sys.stdin)[\"clientSecret\"].split(\"_secret_\")[0])')",
        "# what the browser does with the client secret: attach a test card and confirm",
        f'curl -s -o /dev/null {stripe}" -d payment_method=pm_card_visa',
        f'curl -s -o /dev/null -X POST {stripe}/confirm"',
        "# Stripe now sends payment_intent.succeeded to the webhook; a worker marks the order paid.",
        f"# (A client without webhooks would call: curl -X PATCH {base_url}/api/orders/$ORDER_ID/paid ...)",
        'for i in $(seq 1 30); do',
        f'  ORDER=$(curl -s "{base_url}/api/orders/$ORDER_ID" -H "Authorization: Bearer $TOKEN")',
        """  case "$ORDER" in *'"paymentStatus":"paid"'*) break;; esac; sleep 1""",
        "done",
        'echo "$ORDER"',
        "# --- end ---",
        "",
    ] if settings.stripe_secret_key == DEV_STRIPE_KEY else [
        "(online payments go to the Stripe account of STRIPE_SECRET_KEY: pay them with Stripe.js)", "",
    ]
    return "\n".join([
        "",
        f"Storefront: {base_url}/shop/   (sign in as {demo.customer.email} / demo-password)",
        "  test cards: 4242 4242 4242 4242 pays; 4000 0025 0000 3155 asks for 3-D Secure; "
        "4000 0000 0000 0341 is declined" if settings.stripe_emulator else
        "  pay with Stripe's test cards in test mode",
        f"orders-service is running on {base_url}  (API docs: {base_url}/api/docs)",
        f"demo customer: {demo.customer.email} / password demo-password, id {demo.customer.id}",
        "",
        *cash_on_delivery_flow,
        *online_flow,
        f"(another token: orders-service token --customer {demo.customer.id}; admin: orders-service token --admin)",
        f"Emails to customers are written to {settings.mail_folder} (set SMTP_URL to send them)."
        if not settings.smtp_url else "Emails to customers are sent through SMTP_URL.",
        f"Metrics: {base_url}/metrics   readiness: {base_url}/readyz",
        "Stop with Ctrl-C.",
        "",
    ])


def _register_emulator_webhook(settings: Settings, url: str) -> None:
    """Point the emulator's webhooks at this service (localstripe keeps registrations in memory only)."""
    body = json.dumps({"url": url, "secret": settings.stripe_webhook_secret}).encode()
    request = urllib.request.Request(f"{settings.stripe_api_base}/_config/webhooks/orders-service", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def _cannot_listen(host: str, port: int) -> str | None:
    """Why a server could not listen on host:port now (taken, not allowed …), or None if it could."""
    address = host.strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As gunicorn and the emulator do: a connection of an earlier run in TIME_WAIT is no obstacle.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} is in use on {host} (another `make run`, or another program)"
            if exc.errno == errno.EACCES:
                return f"port {port} is not allowed to this user on {host} (ports below 1024 need root)"
            return f"cannot listen on {host}:{port} ({exc.strerror})"
    return None


def _free_port_after(host: str, port: int) -> int | None:
    return next((p for p in range(port + 1, min(port + 100, 65536)) if _cannot_listen(host, p) is None), None)


def _check_ports(bind: str, port: int, emulator: tuple[str, int] | None) -> None:
    """Stop at once, saying which port is taken and what to run instead, rather than have gunicorn (or the
    emulator) retry for seconds and die among the other processes' start-up lines."""
    problems, instead = [], []
    why = _cannot_listen(bind, port)
    if why:
        problems.append(f"{why}: the web's port, PORT")
        instead.append(f"PORT={_free_port_after(bind, port) or '<a free port>'}")
    if emulator is not None:
        host, emulator_port = emulator
        why = _cannot_listen(host, emulator_port)
        if why:
            problems.append(f"{why}: the Stripe emulator's port, in STRIPE_API_BASE")
            free = _free_port_after(host, emulator_port) or "<a free port>"
            instead.append(f"STRIPE_API_BASE=http://{f'[{host}]' if ':' in host else host}:{free}")
    if problems:
        command = "make run" if "MAKELEVEL" in os.environ else "orders-service dev"
        for problem in problems:
            click.echo(problem, err=True)
        click.echo(f"run `{' '.join(instead)} {command}`, or stop what holds the port", err=True)
        sys.exit(1)


def _reachable(bind: str) -> str:
    """The host part of a URL that reaches a server listening on `bind` from this machine."""
    address = ipaddress.ip_address(bind.strip("[]"))
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return bind


@main.command()
@click.option("--port", type=int, default=None, help="web port (default: PORT or 5000)")
def dev(port):
    """Migrate, seed, then run web + worker + beat from the Procfile and print how to try it."""
    from honcho.environ import parse_procfile
    from honcho.manager import Manager
    from honcho.printer import Printer

    from orders_service.migrate import upgrade

    settings = Settings.from_env()
    port = port or settings.port
    bind = settings.web_bind or "127.0.0.1"  # development stays on this machine unless WEB_BIND says otherwise
    emulator = None  # (host, port) of the embedded Stripe emulator, when it stands in (no Stripe key)
    if settings.stripe_secret_key == DEV_STRIPE_KEY:
        url = urllib.parse.urlsplit(settings.stripe_api_base)
        emulator = (url.hostname, url.port or 8420)
    _check_ports(bind, port, emulator)
    upgrade(settings.database_url, settings.db_pooler)
    shutil.rmtree(settings.metrics_dir, ignore_errors=True)  # an earlier run's samples would add to this one's
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    base_url = f"http://{_reachable(bind)}:{port}"
    guide = try_it_guide(base_url, settings)
    if not ipaddress.ip_address(bind.strip("[]")).is_loopback:
        guide += (f"Listening on {bind} (WEB_BIND): other machines can reach this stack and sign in with the demo "
                  "password.\n")

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PORT"] = str(port)
    env["WEB_BIND"] = bind
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("LOG_FORMAT", "text")  # a terminal, read by a person; production keeps JSON
    procfile = parse_procfile((PROJECT_ROOT / "Procfile").read_text())
    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty()))
    for name in ("web", "worker", "beat"):
        manager.add_process(name, procfile.processes[name], env=env, cwd=str(PROJECT_ROOT))
    if emulator is not None:
        # No Stripe key: the embedded Stripe emulator (localstripe) stands in, on STRIPE_API_BASE's address.
        manager.add_process("stripe", f"{shlex.quote(sys.executable)} -m orders_service.emulator.server "
                            f"--host {shlex.quote(emulator[0])} --port {emulator[1]}", env=env, cwd=str(PROJECT_ROOT))

    def announce():
        if emulator is not None:
            _wait_http(f"{settings.stripe_api_base}/js.stripe.com/v3/", 30)  # the emulator's public page
            _register_emulator_webhook(settings, f"{base_url}/api/webhooks/stripe")
        # Once the web answers and its database and broker do (/readyz), and the processes' start-up lines
        # are out, so that the walk-through is the last thing on the screen.
        if _wait_http(f"{base_url}/readyz", 60):
            time.sleep(2)
            print(guide, flush=True)
        else:
            print(f"web did not answer on {base_url}/readyz within 60 s", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    manager.loop()
    sys.exit(manager.returncode)
