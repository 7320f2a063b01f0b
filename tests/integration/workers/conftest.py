import pytest


@pytest.fixture
def shop(make):
    customer, auth = make.shopper()
    product = make.product("Premium Headphones", price_cents=199_99, stock=100)
    method = make.delivery_method(countries=[])
    return customer, auth, product, method
