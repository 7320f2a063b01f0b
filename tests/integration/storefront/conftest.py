"""The storefront's browser tests: one headless Chromium per test module, one screenshot folder per run."""
from __future__ import annotations

import pytest

from tests.support.screenshots import remember as remember_screenshots
from tests.support.shopper import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright's own browser download cannot work here: Debian's chromium, headless.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp("storefront-screenshots")
    remember_screenshots(request.config, folder)  # the run's summary prints it, under xdist too
    return folder


@pytest.fixture
def catalog(make):
    headphones = make.product("Premium Headphones", price_cents=199_99, stock=100)
    case = make.product("Phone Case", price_cents=29_99, stock=50,
                        variants=[{"name": "Black", "stock": 20}, {"name": "Clear", "stock": 20, "price_cents": 24_99}])
    method = make.delivery_method("Standard Shipping", price_cents=10_00, countries=())
    return headphones, case, method
