import pytest


@pytest.fixture
def shop(make):
    return make.shop(price_cents=199_99, stock=100, delivery_price_cents=10_00)
