"""/shop/ is served by the service (docs/api.md, "The reference storefront"): its files, nothing beside them,
and nothing inline."""
import re

import pytest


def test_the_storefront_and_its_assets_are_served(client):
    page = client.get("/shop/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assets = re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*\"([^\"]+)\"", html)
    assert sorted(assets) == ["shop.css", "shop.js"]
    assert client.get("/shop/shop.js").mimetype in ("text/javascript", "application/javascript")
    assert client.get("/shop/shop.css").mimetype == "text/css"
    assert client.get("/shop").status_code == 308  # to /shop/


def test_nothing_inline_so_a_content_security_policy_of_self_suffices(client):
    html = client.get("/shop/").get_data(as_text=True)
    assert re.findall(r"<script\b(?![^>]*\bsrc=)[^>]*>", html) == []  # every script is a file
    assert "<style" not in html and not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    script = client.get("/shop/shop.js").get_data(as_text=True)
    assert not re.search(r"\beval\(|new Function\(|innerHTML|\.style\.", script)


@pytest.mark.parametrize("path", ["/shop/nothing.js", "/shop/../config.py", "/shop/%2e%2e/__init__.py",
                                  "/shop/a%00b.js"])
def test_nothing_else_is_served_from_there(client, path):
    answer = client.get(path)
    assert answer.status_code == 404 and answer.is_json
