# `make run` and `make test` work on a fresh machine: they create the venv and install everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Two test processes on this 2-core machine; override with `make test PYTEST_WORKERS=4`.
PYTEST_WORKERS ?= 2

.PHONY: install run test lint mutate bench services browser haproxy pgbouncer iproute2 migrate seed clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Migrates, seeds the demo catalog, starts web + worker + beat and prints how to try it.
run: install
	$(BIN)/orders-service dev

# Lints, makes sure PostgreSQL, Redis and RabbitMQ answer (starting them if stopped) and that Chromium
# (the storefront's browser tests), HAProxy (the slow-client test through deploy/haproxy.cfg) and PgBouncer
# (the pooler tests through deploy/pgbouncer.ini) are installed, and `ip` (the several-hosts tests' network
# namespaces), runs the whole suite.
test: install lint services browser haproxy pgbouncer iproute2
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup -q $(PYTEST_ARGS)

# ruff (pyflakes, pycodestyle errors, isort, bugbear) and the import contracts in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Mutation testing of the pure core (state machine, pricing, money, payment decisions) against the
# unit tests; not part of `make test`. Prints the score; fails on a surviving mutant no test explains.
mutate: install
	rm -rf mutants
	$(BIN)/mutmut run > /dev/null 2>&1 || true
	$(BIN)/python -m tests.support.mutants

bench: install services
	$(BIN)/python bench/run.py $(BENCH_ARGS)

services:
	bash .ci/ensure-services

# The storefront's browser tests drive Debian's Chromium with Playwright (Playwright's own browser
# download cannot work here); installed with apt when it is missing.
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# HAProxy as docs/operations.md recommends it in front of the web hosts (Debian's package); the slow-client
# test starts its own with deploy/haproxy.cfg. Installed with apt when it is missing (Debian's own service,
# if it starts, has no frontend: it listens on no port).
haproxy:
	command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || (apt-get update && apt-get install -y haproxy)

# PgBouncer as docs/operations.md ("PgBouncer") recommends it in front of PostgreSQL (Debian's package); the
# pooler tests start their own with deploy/pgbouncer.ini. Installed with apt when it is missing (Debian's own
# service, if it starts, listens on 6432 with a configuration of its own; the tests use free ports).
pgbouncer:
	command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || (apt-get update && apt-get install -y pgbouncer)

# iproute2's `ip`: the several-hosts tests make each host a network namespace (`ip netns`, veth pairs). Minimal
# Debian images lack it; installed with apt when it is missing.
iproute2:
	command -v ip >/dev/null || test -x /usr/sbin/ip || (apt-get update && apt-get install -y iproute2)

migrate: install
	$(BIN)/orders-service migrate

seed: install
	$(BIN)/orders-service seed

clean:
	rm -rf $(VENV) instance .pytest_cache mutants
