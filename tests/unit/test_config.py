"""Settings.from_env (docs/operations.md, "Configuration"): a bad setting stops start-up with one line naming
the variable."""
import pytest

from orders_service import config
from orders_service.config import ConfigError, Settings

JWT = "a-jwt-secret-of-some-length"
PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql+psycopg://u:p@db:5432/orders",
    "CELERY_BROKER_URL": "redis://cache:6379/0",
    "JWT_SECRET_KEY": JWT,
    "STRIPE_SECRET_KEY": "sk_live_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_abc",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_abc",
}


def _refused(env, variable):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert isinstance(caught.value, SystemExit)
    message = str(caught.value)
    assert "\n" not in message and variable in message, message
    return message


def test_a_complete_production_environment_is_accepted():
    settings = Settings.from_env(PRODUCTION)
    assert settings.is_production
    assert settings.stripe_api_base is None  # Stripe's own API, not the emulator
    assert (settings.jwt_secret_key, settings.stripe_secret_key) == (JWT, "sk_live_abc")


@pytest.mark.parametrize("variable", ["JWT_SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
                                      "STRIPE_PUBLISHABLE_KEY"])
@pytest.mark.parametrize("absent", [None, ""])
def test_production_refuses_to_start_without_a_secret(variable, absent):
    env = {k: v for k, v in PRODUCTION.items() if k != variable}
    if absent is not None:
        env[variable] = absent
    _refused(env, variable)


@pytest.mark.parametrize("variable, value", [
    ("DATABASE_URL", "localhost/orders"),
    ("CELERY_BROKER_URL", "http://x"),
    ("STORE_CURRENCY", "XYZ"),
    ("ORDER_PAYMENT_TTL_SECONDS", "soon"),
    ("ORDER_PAYMENT_TTL_SECONDS", "0"),
    ("ORDER_PAYMENT_TTL_SECONDS", "-5"),
    ("SMTP_URL", "http://x"),
    ("STRIPE_API_BASE", "ftp://x"),
    ("APP_ENV", "staging"),
    ("STRIPE_PUBLISHABLE_KEY", "sk_live_abc"),  # a secret key where the browser's key belongs
    ("CORS_ORIGINS", "*"),
    ("CORS_ORIGINS", "shop.example.com"),
    ("CORS_ORIGINS", "https://shop.example.com/path"),
    ("LOG_FORMAT", "xml"),
    ("STRIPE_PAYMENT_METHODS", "card;sepa_debit"),
    ("STRIPE_PAYMENT_METHODS", "card,"),
    ("STRIPE_PAYMENT_METHODS", "card,card"),
    ("STRIPE_PAYMENT_METHODS", "automatic,card"),
    ("STRIPE_PAYMENT_METHODS", "sepa debit"),
    ("RECONCILE_PROCESSING_EVERY_SECONDS", "hourly"),
    ("WEBHOOK_RETRY_SCHEDULE", "5, 5m"),
    ("WEBHOOK_RETRY_SCHEDULE", "5,,300"),
    ("WEBHOOK_RETRY_SCHEDULE", "-1"),
    ("WEBHOOK_RETRY_SCHEDULE", "2592001"),
    ("WEBHOOK_ALLOW_PRIVATE_URLS", "yes"),
    ("WEBHOOK_CONCURRENCY", "0"),
    ("WEBHOOK_RETENTION_DAYS", "forever"),
    ("DB_POOLER", "pgpool"),
    ("DB_IDLE_TRANSACTION_TIMEOUT_MS", "3s"),
    ("DB_IDLE_TRANSACTION_TIMEOUT_MS", "-1"),
])
@pytest.mark.parametrize("environment", ["development", "production"])
def test_a_malformed_setting_is_refused_naming_it(variable, value, environment):
    env = dict(PRODUCTION, APP_ENV=environment)
    env[variable] = value
    _refused(env, variable)


def test_development_defaults():
    settings = Settings.from_env({"JWT_SECRET_KEY": JWT})  # an explicit key: no key file is written
    assert settings.environment == "development" and not settings.is_production
    assert settings.instance_dir == config.PROJECT_ROOT / "instance"
    assert settings.database_url == f"sqlite:///{settings.instance_dir / 'orders.db'}"
    assert settings.metrics_dir == settings.instance_dir / "metrics"
    assert settings.broker_url == "filesystem://"
    assert settings.stripe_secret_key == config.DEV_STRIPE_KEY
    assert settings.stripe_api_base == config.DEV_STRIPE_API_BASE
    assert settings.stripe_webhook_secret == config.DEV_WEBHOOK_SECRET
    assert settings.store_currency == "USD"
    assert settings.order_payment_ttl_seconds == 1800


def test_development_with_a_real_stripe_key_does_not_use_the_emulator():
    settings = Settings.from_env({"JWT_SECRET_KEY": JWT, "STRIPE_SECRET_KEY": "sk_test_real"})
    assert settings.stripe_api_base is None


def test_the_broker_falls_back_to_redis_url_and_a_broker_url_wins():
    assert Settings.from_env({"JWT_SECRET_KEY": JWT, "REDIS_URL": "redis://r:6379/1"}).broker_url == "redis://r:6379/1"
    both = {"JWT_SECRET_KEY": JWT, "REDIS_URL": "redis://r:6379/1", "CELERY_BROKER_URL": "amqp://guest@mq//"}
    assert Settings.from_env(both).broker_url == "amqp://guest@mq//"


@pytest.mark.parametrize("url", ["postgres://u:p@db:5432/orders", "postgresql://u:p@db:5432/orders",
                                 "postgresql+psycopg://u:p@db:5432/orders"])
def test_postgres_urls_get_the_psycopg_driver(url):
    settings = Settings.from_env(dict(PRODUCTION, DATABASE_URL=url))
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/orders"


def test_currency_and_ttl_are_read():
    settings = Settings.from_env(dict(PRODUCTION, STORE_CURRENCY="eur", ORDER_PAYMENT_TTL_SECONDS="60"))
    assert (settings.store_currency, settings.order_payment_ttl_seconds) == ("EUR", 60)


def test_development_without_a_jwt_key_keeps_one_random_key_in_the_instance_dir(tmp_path):
    env = {"ORDERS_INSTANCE_DIR": str(tmp_path / "instance")}
    first = Settings.from_env(env).jwt_secret_key
    assert len(first) >= 32
    assert (tmp_path / "instance" / "dev-jwt-secret").read_text().strip() == first
    assert Settings.from_env(dict(env, APP_ENV="test")).jwt_secret_key == first  # every process agrees on it


@pytest.mark.parametrize("url", ["http://x", "postgresql+psycopg://u:p@db:notaport/orders"])
def test_a_database_url_sqlalchemy_cannot_use_is_refused_at_start_up(url):
    # Accepted today, it stops the process later with a traceback (NoSuchModuleError / ValueError).
    _refused(dict(PRODUCTION, DATABASE_URL=url), "DATABASE_URL")


def test_a_payment_ttl_is_refused_or_usable_by_the_expiry_job():
    from datetime import timedelta

    from orders_service.db import utcnow

    try:
        ttl = Settings.from_env(dict(PRODUCTION, ORDER_PAYMENT_TTL_SECONDS="100000000000")).order_payment_ttl_seconds
    except ConfigError as exc:
        assert "ORDER_PAYMENT_TTL_SECONDS" in str(exc)
        return
    utcnow() - timedelta(seconds=ttl)  # what expire_unpaid_orders computes on every run


def test_rate_limits_default_to_the_contracts():
    settings = Settings.from_env(PRODUCTION)
    assert (settings.auth_rate_limit, settings.order_rate_limit) == ("20/minute", "30/minute")
    assert settings.payment_check_rate_limit == "30/minute"
    assert settings.metrics_token is None
    assert Settings.from_env({**PRODUCTION, "PAYMENT_CHECK_RATE_LIMIT": "3/10seconds"}
                             ).payment_check_rate_limit == "3/10seconds"


@pytest.mark.parametrize("variable", ["AUTH_RATE_LIMIT", "ORDER_RATE_LIMIT", "LOGIN_FAILURE_LIMIT",
                                      "PAYMENT_CHECK_RATE_LIMIT"])
@pytest.mark.parametrize("value", ["lots", "20/fortnight", "-1/minute"])
def test_a_malformed_rate_limit_stops_start_up(variable, value):
    _refused({**PRODUCTION, variable: value}, variable)


def test_rate_limits_and_the_metrics_token_are_read():
    settings = Settings.from_env({**PRODUCTION, "AUTH_RATE_LIMIT": "100/hour", "ORDER_RATE_LIMIT": "5 per minute",
                                  "METRICS_TOKEN": "scrape-me"})
    assert (settings.auth_rate_limit, settings.order_rate_limit, settings.metrics_token) == (
        "100/hour", "5 per minute", "scrape-me")


# The connection budget (docs/operations.md): every process of every host fits max_connections.
@pytest.mark.parametrize("env, pool", [
    ({}, 18),  # (100 - 10) // 1 host // (2 web + 2 worker + 1 beat)
    ({"APP_HOSTS": "2"}, 9),
    ({"APP_HOSTS": "3", "DB_MAX_CONNECTIONS": "500"}, 32),
    ({"WEB_CONCURRENCY": "8", "WORKER_CONCURRENCY": "4"}, 6),
    ({"WEB_THREADS": "4"}, 5),  # never more than a process's threads can use at once
    ({"DB_POOL_SIZE": "4", "APP_HOSTS": "2"}, 4),
])
def test_pool_sizes_fit_every_host_into_max_connections(env, pool):
    settings = Settings.from_env({**PRODUCTION, **env})
    assert settings.db_pool_size == pool
    hosts = int(env.get("APP_HOSTS", 1))
    processes = int(env.get("WEB_CONCURRENCY", 2)) + int(env.get("WORKER_CONCURRENCY", 2)) + 1
    assert pool * processes * hosts <= int(env.get("DB_MAX_CONNECTIONS", 100)) - 10


@pytest.mark.parametrize("env, variable", [
    ({"DB_POOL_SIZE": "40"}, "DB_POOL_SIZE"),  # 40 × 5 processes > 90
    ({"APP_HOSTS": "20"}, "DB_MAX_CONNECTIONS"),  # 90 // 20 hosts // 5 processes = 0
    ({"DB_MAX_CONNECTIONS": "10", "DB_RESERVED_CONNECTIONS": "10"}, "DB_MAX_CONNECTIONS"),
])
def test_a_budget_that_cannot_fit_stops_start_up(env, variable):
    _refused({**PRODUCTION, **env}, variable)


def test_stripe_js_origins_follow_the_emulator():
    real = Settings.from_env(PRODUCTION).stripe_js_origins
    assert real["script-src"] == ("https://js.stripe.com",) and "https://api.stripe.com" in real["connect-src"]
    development = {**PRODUCTION, "APP_ENV": "development", "STRIPE_API_BASE": "http://127.0.0.1:8420/v1"}
    assert set(Settings.from_env(development).stripe_js_origins.values()) == {("http://127.0.0.1:8420",)}


@pytest.mark.parametrize("environment, base, said, emulator", [
    ("development", "http://127.0.0.1:8420", None, True),   # loopback outside production: the emulator
    ("test", "http://localhost:8420", None, True),
    ("development", "http://[::1]:8420", None, True),
    ("development", "http://127.8.0.1:8420", None, True),   # all of 127.0.0.0/8
    ("development", "https://stripe-egress.internal:8443", None, False),  # a proxy in front of Stripe
    ("development", "http://127.0.0.1:8420", "false", False),  # a local proxy in front of Stripe, said so
    ("development", "https://stripe-emulator.test", "true", True),  # an emulator elsewhere, said so
    ("production", "http://127.0.0.1:8420", None, False),   # never guessed in production: an egress proxy
    ("production", None, None, False),
])
def test_the_emulator_is_what_stripe_emulator_says_or_a_loopback_api_base_outside_production(
        environment, base, said, emulator):
    env = {**PRODUCTION, "APP_ENV": environment}
    env.pop("STRIPE_API_BASE", None)
    env.update({k: v for k, v in (("STRIPE_API_BASE", base), ("STRIPE_EMULATOR", said)) if v is not None})
    assert Settings.from_env(env).stripe_emulator is emulator


@pytest.mark.parametrize("env", [
    {"STRIPE_EMULATOR": "true", "STRIPE_API_BASE": "http://127.0.0.1:8420"},  # production
    {"STRIPE_EMULATOR": "yes", "APP_ENV": "development"},
    {"STRIPE_EMULATOR": "true", "APP_ENV": "development", "STRIPE_API_BASE": ""},  # no emulator named
])
def test_stripe_emulator_is_refused_in_production_and_when_malformed(env):
    _refused({**PRODUCTION, **env}, "STRIPE_EMULATOR")


def test_cors_origins_are_a_list_of_origins():
    env = dict(PRODUCTION, CORS_ORIGINS=" https://shop.example.com, http://localhost:3000/ ,http://[::1]:8080,"
                                        "http://192.168.1.20:3000")
    assert Settings.from_env(env).cors_origins == ("https://shop.example.com", "http://localhost:3000",
                                                   "http://[::1]:8080", "http://192.168.1.20:3000")
    assert Settings.from_env(PRODUCTION).cors_origins == ()


@pytest.mark.parametrize("origin", [
    "https://*.example.com",  # a wildcard: flask-cors would have read it as an unanchored regex
    "https://shop.example.com$", "^https://shop.example.com", "https://(shop|admin).example.com",
    "https://shop\\.example\\.com", "https://shop.example.com:99999", "https://shop..example.com",
    "https://-shop.example.com", "https://shop_1.example.com", "https://shop.example.com?x", "https://user@shop.com",
])
def test_cors_origins_with_patterns_or_wildcards_are_refused_in_one_line(origin):
    message = _refused(dict(PRODUCTION, CORS_ORIGINS=f"https://ok.example.com,{origin}"), "CORS_ORIGINS")
    assert "no wildcards or patterns" in message and repr(origin) in message, message


def test_stripe_js_comes_from_the_emulator_only_when_one_is_used():
    assert Settings.from_env(PRODUCTION).stripe_js_url == "https://js.stripe.com/v3/"
    emulated = Settings.from_env(dict(PRODUCTION, APP_ENV="development", STRIPE_API_BASE="http://127.0.0.1:8420/"))
    assert emulated.stripe_js_url == "http://127.0.0.1:8420/js.stripe.com/v3/"
    development = Settings.from_env({"ORDERS_INSTANCE_DIR": "/tmp/orders-config-test"})
    assert development.stripe_publishable_key.startswith("pk_test_")
    assert development.log_format == "json"


@pytest.mark.parametrize("value", ["127.0.0.1", "0.0.0.0", "[::1]", "[::]", "10.1.2.3"])
def test_web_bind_takes_an_address_as_gunicorn_takes_it(value):
    assert Settings.from_env({"WEB_BIND": value}).web_bind == value
    assert Settings.from_env({}).web_bind is None  # the Procfile's every interface; `make run`'s loopback


@pytest.mark.parametrize("value", ["localhost", "::1", "[127.0.0.1]", "127.0.0.1:5000", "0.0.0.0/0"])
def test_web_bind_refuses_what_is_not_an_address(value):
    assert "WEB_BIND" in _refused({"WEB_BIND": value}, "WEB_BIND")


@pytest.mark.parametrize("env, methods", [
    ({}, None),                                                    # Stripe's own API: the Dashboard's methods
    ({"STRIPE_PAYMENT_METHODS": "automatic"}, None),
    ({"STRIPE_PAYMENT_METHODS": " Automatic "}, None),
    ({"STRIPE_PAYMENT_METHODS": "card"}, ("card",)),
    ({"STRIPE_PAYMENT_METHODS": "card, sepa_debit"}, ("card", "sepa_debit")),
    ({"APP_ENV": "development", "STRIPE_SECRET_KEY": ""}, ("card",)),   # the emulator knows cards only
    ({"APP_ENV": "development", "STRIPE_SECRET_KEY": "", "STRIPE_PAYMENT_METHODS": "card"}, ("card",)),
    # An egress proxy or a real-shaped stand-in on this machine is a Stripe like any other when so told.
    ({"APP_ENV": "development", "STRIPE_API_BASE": "http://127.0.0.1:9", "STRIPE_EMULATOR": "false"}, None),
])
def test_payment_methods_are_automatic_with_stripe_and_card_with_the_emulator(env, methods):
    settings = Settings.from_env({k: v for k, v in dict(PRODUCTION, **env).items() if v != ""})
    assert settings.stripe_payment_methods == methods


@pytest.mark.parametrize("methods", ["automatic", "card,sepa_debit", "ideal"])
def test_the_emulator_refuses_any_method_but_card(methods):
    env = {"JWT_SECRET_KEY": JWT, "STRIPE_PAYMENT_METHODS": methods}  # development: localstripe stands in
    message = _refused(env, "STRIPE_PAYMENT_METHODS")
    assert "emulator" in message


def test_the_webhook_settings():
    assert Settings.from_env(PRODUCTION).webhook_retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000,
                                                                    86400)
    settings = Settings.from_env(dict(PRODUCTION, WEBHOOK_RETRY_SCHEDULE=" 1, 2 ,3", WEBHOOK_ALLOW_PRIVATE_URLS="true"))
    assert (settings.webhook_retry_schedule, settings.webhook_allow_private_urls) == ((1, 2, 3), True)
    assert not Settings.from_env(PRODUCTION).webhook_allow_private_urls


@pytest.mark.parametrize("raw, mode", [(None, "automatic"), ("automatic", "automatic"), ("on_shipment", "on_shipment"),
                                       (" ON_SHIPMENT ", "on_shipment")])
def test_payment_capture_is_automatic_unless_held_until_shipment(raw, mode):
    env = dict(PRODUCTION, **({"PAYMENT_CAPTURE": raw} if raw is not None else {}))
    assert Settings.from_env(env).payment_capture == mode


@pytest.mark.parametrize("raw", ["manual", "on_delivery", "true"])
def test_another_payment_capture_stops_the_start(raw):
    assert "automatic or on_shipment" in _refused(dict(PRODUCTION, PAYMENT_CAPTURE=raw), "PAYMENT_CAPTURE")


def test_the_pooler_is_none_unless_pgbouncer_is_named_for_a_postgresql_url():
    assert Settings.from_env(PRODUCTION).db_pooler == "none"
    assert Settings.from_env(dict(PRODUCTION, DB_POOLER="PgBouncer")).db_pooler == "pgbouncer"
    assert Settings.from_env(PRODUCTION).db_idle_transaction_timeout_ms == 3000
    assert Settings.from_env(dict(PRODUCTION, DB_IDLE_TRANSACTION_TIMEOUT_MS="0")).db_idle_transaction_timeout_ms == 0
    _refused({"JWT_SECRET_KEY": JWT, "DB_POOLER": "pgbouncer"}, "DB_POOLER")  # SQLite behind PgBouncer
    # PgBouncer refuses startup options: said at start-up rather than as a 503 on every request.
    with_options = dict(PRODUCTION, DB_POOLER="pgbouncer",
                        DATABASE_URL="postgresql+psycopg://u@db:6432/shop?options=-c%20search_path%3Dshop")
    assert "remove options=" in _refused(with_options, "DB_POOLER")
