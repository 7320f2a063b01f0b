"""The service's settings: read once from the environment, validated at start-up (docs/operations.md,
"Configuration", lists every variable)."""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from limits import parse_many
from sqlalchemy.engine import make_url

from orders_service import money

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_STRIPE_KEY = "sk_test_orders_service_dev"
DEV_WEBHOOK_SECRET = "whsec_orders_service_dev"
DEV_STRIPE_API_BASE = "http://127.0.0.1:8420"
# localstripe accepts any `pk_` key from the browser; real Stripe needs the account's own.
DEV_PUBLISHABLE_KEY = "pk_test_orders_service_dev"
STRIPE_JS_URL = "https://js.stripe.com/v3/"
# The largest request body the service reads (Flask's MAX_CONTENT_LENGTH; the web worker waits for no more).
MAX_BODY_BYTES = 1024 * 1024


class ConfigError(SystemExit):
    """A missing or malformed setting: stops the process with one line naming the variable."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"configuration error: {variable} {problem}")


def _int(env, name: str, default: int, minimum: int = 0, maximum: int = 10**7) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:  # the upper bound keeps date arithmetic in range
        raise ConfigError(name, f"must be between {minimum} and {maximum}, got {value}")
    return value


def _rate_limit(env, name: str, default: str) -> str:
    """A flask-limiter rate limit string: `20/minute`, `100 per hour`, `5/second;100/day`."""
    raw = (env.get(name) or default).strip()
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(name, f"must be a rate limit such as 20/minute or 100/hour, got {raw!r}") from None
    return raw


def _origin(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _db_pool_size(env) -> int:
    """Connections per process such that every process of every host fits PostgreSQL's max_connections.

    budget per host = (DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS) // APP_HOSTS
    processes per host = WEB_CONCURRENCY + WORKER_CONCURRENCY + 1 (beat)
    per process = budget per host // processes per host   (DB_POOL_SIZE, when set, must fit too)
    """
    max_connections = _int(env, "DB_MAX_CONNECTIONS", 100, minimum=1, maximum=100_000)
    reserved = _int(env, "DB_RESERVED_CONNECTIONS", 10, minimum=0, maximum=100_000)
    hosts = _int(env, "APP_HOSTS", 1, minimum=1, maximum=10_000)
    processes = (_int(env, "WEB_CONCURRENCY", 2, minimum=1, maximum=1000)
                 + _int(env, "WORKER_CONCURRENCY", 2, minimum=1, maximum=1000) + 1)
    usable = max_connections - reserved
    per_process = usable // hosts // processes
    explicit = _int(env, "DB_POOL_SIZE", 0, minimum=1, maximum=1000) if env.get("DB_POOL_SIZE") else None
    if explicit is not None:
        if explicit > per_process:
            raise ConfigError("DB_POOL_SIZE", f"{explicit} × {processes} processes × {hosts} hosts exceeds "
                                              f"DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS = {usable}")
        return explicit
    if per_process < 1:
        raise ConfigError("DB_MAX_CONNECTIONS", f"{max_connections} (less {reserved} reserved) leaves no "
                                                f"connection for {processes} processes on each of {hosts} hosts")
    return min(per_process, _int(env, "WEB_THREADS", 48, minimum=1, maximum=10_000) + 1)


POOLERS = ("none", "pgbouncer")


def _pooler(env, database_url: str) -> str:
    """DB_POOLER: what DATABASE_URL reaches, PostgreSQL itself (`none`) or PgBouncer in transaction mode."""
    raw = (env.get("DB_POOLER") or "none").strip().lower()
    if raw not in POOLERS:
        raise ConfigError("DB_POOLER", f"must be none or pgbouncer, got {raw!r}")
    if raw == "pgbouncer" and not database_url.startswith("postgresql"):
        raise ConfigError("DB_POOLER", "pgbouncer needs a PostgreSQL DATABASE_URL, "
                                       f"got scheme {_scheme(database_url)!r}")
    if raw == "pgbouncer" and "options" in parse_qs(urlsplit(database_url).query):
        # PgBouncer refuses startup options: every connection would fail, every request a 503.
        raise ConfigError("DB_POOLER", "pgbouncer refuses startup options; remove options= from DATABASE_URL")
    return raw


def _scheme(url: str) -> str:
    """Only the scheme of a URL goes into an error: the rest may hold a password."""
    return url.split("://", 1)[0] if "://" in url else "(none)"


def _smtp_url(env) -> str | None:
    url = env.get("SMTP_URL") or None
    if url and not url.startswith(("smtp://", "smtps://")):
        raise ConfigError("SMTP_URL", f"must be an smtp:// or smtps:// URL, got scheme {_scheme(url)!r}")
    return url


# An origin as a browser sends it in `Origin`: scheme, a host name (DNS labels), an IPv4 address or a
# bracketed IPv6 one, and a port. Nothing else: no wildcard, no pattern (flask-cors would read `*`, `?`,
# `[`, `$`… as an unanchored regular expression, so `https://*.example.com` let in
# `https://aexample.com.attacker.net`).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ORIGIN = re.compile(rf"https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{{1,5}}))?")


def _origins(env) -> tuple[str, ...]:
    """CORS_ORIGINS: comma-separated `scheme://host[:port]`, exactly as browsers send them in `Origin`."""
    origins = tuple(o.strip().rstrip("/") for o in (env.get("CORS_ORIGINS") or "").split(",") if o.strip())
    for origin in origins:
        match = _ORIGIN.fullmatch(origin)
        if match is None or int(match["port"] or 1) > 65535:
            raise ConfigError("CORS_ORIGINS", "must list origins exactly as browsers send them, such as "
                                              "https://shop.example.com or http://localhost:3000 (no wildcards "
                                              f"or patterns: list each origin), got {origin!r}")
    return origins


def _bool(env, name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise ConfigError(name, f"must be true or false, got {raw!r}")
    return raw == "true"


def _bind_address(env) -> str | None:
    """WEB_BIND: the address the web listens on, as gunicorn's `--bind` takes it (an IPv6 one in brackets);
    unset, the Procfile listens on every interface and `orders-service dev` on loopback only."""
    raw = (env.get("WEB_BIND") or "").strip()
    if not raw:
        return None
    bracketed = raw.startswith("[") and raw.endswith("]")
    try:
        address = ipaddress.ip_address(raw[1:-1] if bracketed else raw)
    except ValueError:
        address = None
    if address is None or (address.version == 6) != bracketed:
        raise ConfigError("WEB_BIND", f"must be an IP address such as 127.0.0.1, 0.0.0.0 or [::1], got {raw!r}")
    return raw


def _names_loopback(url: str | None) -> bool:
    """Whether the URL's host is this machine: 127.0.0.0/8, ::1 or localhost."""
    host = urlsplit(url).hostname if url else None
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stripe_emulator(env, stripe_base: str | None, production: bool) -> bool:
    """STRIPE_EMULATOR: whether STRIPE_API_BASE is a Stripe emulator (localstripe). Said, or guessed from a
    loopback STRIPE_API_BASE outside production; never in production, where an egress proxy in front of
    Stripe is a Stripe like any other."""
    emulator = _bool(env, "STRIPE_EMULATOR", default=not production and _names_loopback(stripe_base))
    if emulator and production:
        raise ConfigError("STRIPE_EMULATOR", "cannot be true with APP_ENV=production")
    if emulator and not stripe_base:
        raise ConfigError("STRIPE_EMULATOR", "needs STRIPE_API_BASE, the emulator's address")
    return emulator


AUTOMATIC_PAYMENT_METHODS = "automatic"


def _payment_methods(env, emulator: bool) -> tuple[str, ...] | None:
    """STRIPE_PAYMENT_METHODS: `automatic` (None: the methods enabled in the Stripe Dashboard) or a list of
    Stripe payment method types. The emulator knows cards only, so `card` is its default."""
    raw = (env.get("STRIPE_PAYMENT_METHODS") or "").strip().lower()
    if emulator and raw not in ("", "card"):
        raise ConfigError("STRIPE_PAYMENT_METHODS", f"must be card with the Stripe emulator (STRIPE_EMULATOR), "
                                                    f"which knows no other payment method, got {raw!r}")
    if not raw:
        return ("card",) if emulator else None
    if raw == AUTOMATIC_PAYMENT_METHODS:
        return None
    types = tuple(t.strip() for t in raw.split(","))
    for name in types:
        if name == AUTOMATIC_PAYMENT_METHODS or not re.fullmatch(r"[a-z][a-z0-9_]{0,49}", name):
            raise ConfigError("STRIPE_PAYMENT_METHODS", "must be automatic or a comma-separated list of Stripe "
                                                        f"payment method types such as card,sepa_debit, got {raw!r}")
    if len(set(types)) != len(types):
        raise ConfigError("STRIPE_PAYMENT_METHODS", f"names a payment method type twice: {raw!r}")
    return types


PAYMENT_CAPTURE_MODES = ("automatic", "on_shipment")


def _payment_capture(env) -> str:
    """PAYMENT_CAPTURE: take a card payment when the customer pays, or hold it until the order ships."""
    raw = (env.get("PAYMENT_CAPTURE") or "automatic").strip().lower()
    if raw not in PAYMENT_CAPTURE_MODES:
        raise ConfigError("PAYMENT_CAPTURE", f"must be automatic or on_shipment, got {raw!r}")
    return raw


DEFAULT_WEBHOOK_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)  # ~3 days, as Stripe


def _retry_schedule(env) -> tuple[int, ...]:
    """WEBHOOK_RETRY_SCHEDULE: seconds before each retry, comma-separated (`5,300,1800`)."""
    raw = (env.get("WEBHOOK_RETRY_SCHEDULE") or "").strip()
    if not raw:
        return DEFAULT_WEBHOOK_RETRY_SCHEDULE
    try:
        waits = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError("WEBHOOK_RETRY_SCHEDULE", f"must be whole seconds separated by commas, got {raw!r}") from None
    if len(waits) > 100 or not all(0 <= wait <= 30 * 86400 for wait in waits):
        raise ConfigError("WEBHOOK_RETRY_SCHEDULE", "must be at most 100 waits, each 0 to 2592000 seconds")
    return waits


def _dev_jwt_secret(instance_dir: Path) -> str:
    """One random key per checkout, kept on disk so that every process (and the token CLI) agrees."""
    path = instance_dir / "dev-jwt-secret"
    if not path.exists():
        instance_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


@dataclass(frozen=True)
class Settings:
    environment: str
    database_url: str
    broker_url: str
    redis_url: str | None
    jwt_secret_key: str
    stripe_secret_key: str
    stripe_api_base: str | None
    stripe_webhook_secret: str
    stripe_timeout_seconds: float
    stripe_publishable_key: str
    store_currency: str
    order_payment_ttl_seconds: int
    # STRIPE_API_BASE is a Stripe emulator: its browser flow, no SDK retries, no parameters it refuses.
    stripe_emulator: bool = False
    # The payment method types a PaymentIntent offers; None: `automatic`, the methods enabled in the Dashboard.
    stripe_payment_methods: tuple[str, ...] | None = ("card",)
    # `automatic`: a payment is taken when the customer pays; `on_shipment`: a card is only authorized then
    # (held), and captured when the order ships (methods that cannot be held are taken at once).
    payment_capture: str = "automatic"
    # Development files: SQLite, the file broker, mail, the beat schedule, the dev JWT key.
    instance_dir: Path = PROJECT_ROOT / "instance"
    # prometheus-client's multiprocess folder: every process of a host writes its samples there.
    metrics_dir: Path = PROJECT_ROOT / "instance" / "metrics"
    access_token_minutes: int = 60
    port: int = 5000
    # The address the web listens on (WEB_BIND): None leaves it to the Procfile (every interface), or to
    # `orders-service dev` (loopback: a development stack with a published demo password stays private).
    web_bind: str | None = None
    # PostgreSQL connections each process may hold (`pool_size`; there is no overflow): the connection
    # budget of docs/operations.md, or DB_POOL_SIZE when an operator sets it.
    db_pool_size: int = 15
    db_pool_timeout_seconds: float = 5.0
    # How long a web transaction waits for a row lock, and how long one statement of it may run (0: no
    # bound); set per transaction (SET LOCAL), so safe behind a transaction-mode pooler.
    db_lock_timeout_ms: int = 5000
    db_statement_timeout_ms: int = 10_000
    # `none` (PostgreSQL itself) or `pgbouncer` (a transaction-mode pooler in front of it: no server-side
    # prepared statements, no startup `options`, every session setting per transaction).
    db_pooler: str = "none"
    # How long a transaction may sit idle, between two statements, before PostgreSQL ends its session and its
    # locks with it (idle_in_transaction_session_timeout): a frozen host's row locks go within this (0: no bound).
    db_idle_transaction_timeout_ms: int = 3000
    # docs/api.md, "Rate limits": requests per client address (login and registration together), orders
    # per customer (both routes together), and wrong passwords per account (any address).
    auth_rate_limit: str = "20/minute"
    order_rate_limit: str = "30/minute"
    # How often one customer may ask whether an order is paid (PATCH …/paid, all orders together): each
    # ask may cost a Stripe read, and Stripe allows 25 a second per endpoint for the whole shop.
    payment_check_rate_limit: str = "30/minute"
    login_failure_limit: str = "10/15minutes"
    # How many proxies (load balancers) in front of gunicorn append to X-Forwarded-For: the client
    # address the per-address limit counts is the one the nearest of them saw. 0: the socket's peer.
    proxy_hops: int = 0
    # argon2 operations one process computes at once (64 MiB each): bounds memory under a login flood.
    password_hash_concurrency: int = 2
    metrics_token: str | None = None
    # The run gate (gate.py): requests of one web process running at a time (0: no gate), and how
    # long one waits for its turn before it goes in anyway.
    web_active_requests: int = 2
    web_gate_stall_ms: int = 250
    # How long a request may take to arrive, headers and body, before the web answers 408 (server/worker.py).
    web_request_arrival_seconds: int = 10
    # Mail and the periodic jobs (defaults suit production, tests shorten them).
    smtp_url: str | None = None
    mail_from: str = "orders@example.com"
    maintenance_interval_seconds: int = 60
    notification_interval_seconds: int = 5
    reconcile_after_seconds: int = 300
    # A payment the provider is processing (a bank debit: days) is asked about this rarely: its webhook
    # normally tells, and each ask is a call of Stripe's budget.
    reconcile_processing_every_seconds: int = 3600
    # A confirmed online order not yet shipped is read at Stripe once this long after it was paid, and again
    # each time as long after (a dashboard refund whose event never came).
    reconcile_confirmed_seconds: int = 3600
    redrive_after_seconds: int = 60
    # Stripe calls a periodic job makes at once (Stripe allows 25 requests a second per endpoint).
    provider_concurrency: int = 6
    # Origins whose pages may call /api from a browser (CORS); none: same origin only.
    cors_origins: tuple[str, ...] = ()
    # `json` (one object per line, for log collectors) or `text` (for people: `make run`).
    log_format: str = "json"
    # Outbound webhooks: the waits before each retry, whether endpoints may name private addresses,
    # deliveries one worker process sends at once (each to another endpoint), days delivered ones are kept.
    webhook_retry_schedule: tuple[int, ...] = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    webhook_allow_private_urls: bool = False
    webhook_concurrency: int = 8
    webhook_retention_days: int = 30

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def mail_folder(self) -> Path:
        """Where development writes the emails it would send (no SMTP_URL)."""
        return self.instance_dir / "mail"

    @property
    def currency(self) -> money.Currency:
        """STORE_CURRENCY with its minor unit as Stripe counts it."""
        return money.currency(self.store_currency)

    @property
    def broker_folders(self) -> dict[str, Path]:
        """The embedded file broker's folders (CELERY_BROKER_URL unset and no REDIS_URL)."""
        folder = self.instance_dir / "broker"
        return {"queue": folder / "queue", "control": folder / "control"}

    @property
    def stripe_js_url(self) -> str:
        """Where the browser loads Stripe.js: the emulator serves its own."""
        if self.stripe_emulator:
            return f"{self.stripe_api_base.rstrip('/')}/js.stripe.com/v3/"
        return STRIPE_JS_URL

    @property
    def stripe_js_origins(self) -> dict[str, tuple[str, ...]]:
        """What a page using Stripe.js must be allowed to reach, by CSP directive (Stripe's CSP guide);
        an emulator serves all of it from its own origin."""
        if self.stripe_emulator:
            origin = _origin(self.stripe_api_base)
            return {"script-src": (origin,), "frame-src": (origin,), "connect-src": (origin,)}
        return {"script-src": ("https://js.stripe.com",),
                "frame-src": ("https://js.stripe.com", "https://hooks.stripe.com"),
                "connect-src": ("https://api.stripe.com",)}

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        env = os.environ if env is None else env
        environment = env.get("APP_ENV", "development")
        if environment not in ("development", "test", "production"):
            raise ConfigError("APP_ENV", f"must be development, test or production, got {environment!r}")
        production = environment == "production"
        instance_dir = Path(env.get("ORDERS_INSTANCE_DIR") or PROJECT_ROOT / "instance")

        database_url = env.get("DATABASE_URL") or f"sqlite:///{instance_dir / 'orders.db'}"
        if database_url.startswith("postgres://"):  # Heroku-style URLs name no driver
            database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
        elif database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
        try:
            make_url(database_url).get_dialect()  # an unknown scheme or driver fails here, not at first use
        except Exception:  # ArgumentError, NoSuchModuleError, ValueError: all "not a URL we can use"
            raise ConfigError("DATABASE_URL",
                              f"is not a database URL SQLAlchemy can use (scheme {_scheme(database_url)!r})") from None

        redis_url = env.get("REDIS_URL") or None
        broker_url = env.get("CELERY_BROKER_URL") or redis_url or "filesystem://"
        if not broker_url.startswith(("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://", "filesystem://")):
            raise ConfigError("CELERY_BROKER_URL",
                              f"must be a redis:// or amqp:// URL, got scheme {_scheme(broker_url)!r}")

        jwt_secret = env.get("JWT_SECRET_KEY")
        if not jwt_secret:
            if production:
                raise ConfigError("JWT_SECRET_KEY", "is required in production")
            jwt_secret = _dev_jwt_secret(instance_dir)
        elif len(jwt_secret) < 16:
            raise ConfigError("JWT_SECRET_KEY", "must be at least 16 characters")

        stripe_key = env.get("STRIPE_SECRET_KEY")
        stripe_base = env.get("STRIPE_API_BASE") or None
        if not stripe_key:
            if production:
                raise ConfigError("STRIPE_SECRET_KEY", "is required in production")
            stripe_key = DEV_STRIPE_KEY
            stripe_base = stripe_base or DEV_STRIPE_API_BASE
        elif not stripe_key.startswith(("sk_", "rk_")):
            raise ConfigError("STRIPE_SECRET_KEY", "must be a Stripe secret key (sk_…)")
        if stripe_base and not stripe_base.startswith(("http://", "https://")):
            raise ConfigError("STRIPE_API_BASE", f"must be an http(s) URL, got {stripe_base!r}")

        webhook_secret = env.get("STRIPE_WEBHOOK_SECRET")
        if not webhook_secret:
            if production:
                raise ConfigError("STRIPE_WEBHOOK_SECRET", "is required in production")
            webhook_secret = DEV_WEBHOOK_SECRET

        publishable_key = env.get("STRIPE_PUBLISHABLE_KEY")
        if not publishable_key:
            if production:
                raise ConfigError("STRIPE_PUBLISHABLE_KEY", "is required in production")
            publishable_key = DEV_PUBLISHABLE_KEY
        elif not publishable_key.startswith("pk_"):
            raise ConfigError("STRIPE_PUBLISHABLE_KEY", "must be a Stripe publishable key (pk_…)")

        log_format = env.get("LOG_FORMAT") or "json"
        if log_format not in ("json", "text"):
            raise ConfigError("LOG_FORMAT", f"must be json or text, got {log_format!r}")

        currency = env.get("STORE_CURRENCY", "USD").upper()
        try:
            money.currency(currency)
        except money.UnknownCurrency as exc:
            raise ConfigError("STORE_CURRENCY", str(exc)) from None

        try:
            stripe_timeout = float(env.get("STRIPE_TIMEOUT_SECONDS", "10"))
        except ValueError:
            raise ConfigError("STRIPE_TIMEOUT_SECONDS", "must be a number of seconds") from None

        emulator = _stripe_emulator(env, stripe_base, production)
        return cls(
            environment=environment,
            database_url=database_url,
            broker_url=broker_url,
            redis_url=redis_url,
            jwt_secret_key=jwt_secret,
            stripe_secret_key=stripe_key,
            stripe_api_base=stripe_base,
            stripe_webhook_secret=webhook_secret,
            stripe_timeout_seconds=stripe_timeout,
            stripe_publishable_key=publishable_key,
            store_currency=currency,
            order_payment_ttl_seconds=_int(env, "ORDER_PAYMENT_TTL_SECONDS", 1800, minimum=1),
            stripe_emulator=emulator,
            stripe_payment_methods=_payment_methods(env, emulator),
            payment_capture=_payment_capture(env),
            instance_dir=instance_dir,
            metrics_dir=Path(env.get("PROMETHEUS_MULTIPROC_DIR") or instance_dir / "metrics"),
            access_token_minutes=_int(env, "ACCESS_TOKEN_MINUTES", 60, minimum=1),
            port=_int(env, "PORT", 5000, minimum=1, maximum=65535),
            web_bind=_bind_address(env),
            db_pool_size=_db_pool_size(env),
            db_pool_timeout_seconds=_int(env, "DB_POOL_TIMEOUT_SECONDS", 5, minimum=1, maximum=600),
            db_lock_timeout_ms=_int(env, "DB_LOCK_TIMEOUT_MS", 5000, maximum=600_000),
            db_statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 10_000, maximum=3_600_000),
            db_pooler=_pooler(env, database_url),
            db_idle_transaction_timeout_ms=_int(env, "DB_IDLE_TRANSACTION_TIMEOUT_MS", 3000, maximum=3_600_000),
            auth_rate_limit=_rate_limit(env, "AUTH_RATE_LIMIT", "20/minute"),
            order_rate_limit=_rate_limit(env, "ORDER_RATE_LIMIT", "30/minute"),
            payment_check_rate_limit=_rate_limit(env, "PAYMENT_CHECK_RATE_LIMIT", "30/minute"),
            login_failure_limit=_rate_limit(env, "LOGIN_FAILURE_LIMIT", "10/15minutes"),
            proxy_hops=_int(env, "PROXY_HOPS", 0, maximum=10),
            password_hash_concurrency=_int(env, "PASSWORD_HASH_CONCURRENCY", 2, minimum=1, maximum=1000),
            metrics_token=env.get("METRICS_TOKEN") or None,
            web_active_requests=_int(env, "WEB_ACTIVE_REQUESTS", 2, maximum=1000),
            web_gate_stall_ms=_int(env, "WEB_GATE_STALL_MS", 250, minimum=1, maximum=60_000),
            web_request_arrival_seconds=_int(env, "WEB_REQUEST_ARRIVAL_SECONDS", 10, minimum=1, maximum=600),
            smtp_url=_smtp_url(env),
            mail_from=env.get("MAIL_FROM", "orders@example.com"),
            maintenance_interval_seconds=_int(env, "MAINTENANCE_INTERVAL_SECONDS", 60, minimum=1),
            notification_interval_seconds=_int(env, "NOTIFICATION_INTERVAL_SECONDS", 5, minimum=1),
            reconcile_after_seconds=_int(env, "RECONCILE_AFTER_SECONDS", 300),
            reconcile_processing_every_seconds=_int(env, "RECONCILE_PROCESSING_EVERY_SECONDS", 3600),
            reconcile_confirmed_seconds=_int(env, "RECONCILE_CONFIRMED_SECONDS", 3600, minimum=60),
            redrive_after_seconds=_int(env, "REDRIVE_AFTER_SECONDS", 60),
            provider_concurrency=_int(env, "PROVIDER_CONCURRENCY", 6, minimum=1, maximum=64),
            cors_origins=_origins(env),
            log_format=log_format,
            webhook_retry_schedule=_retry_schedule(env),
            webhook_allow_private_urls=_bool(env, "WEBHOOK_ALLOW_PRIVATE_URLS", False),
            webhook_concurrency=_int(env, "WEBHOOK_CONCURRENCY", 8, minimum=1, maximum=256),
            webhook_retention_days=_int(env, "WEBHOOK_RETENTION_DAYS", 30, minimum=1, maximum=36500),
        )
