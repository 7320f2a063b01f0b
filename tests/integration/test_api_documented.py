"""docs/api.md, the client developer's reference, has a section for every operation the service serves: a
route added to the OpenAPI document without its section fails here, and so does a section whose route is gone."""
import re
from pathlib import Path

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
METHODS = {"get", "post", "put", "patch", "delete"}
# A route's section: "### `POST /api/orders/{orderId}/cancel`".
SECTION = re.compile(r"^### `([A-Z]+) (/\S*)`$", re.MULTILINE)


def _operations(client) -> set[str]:
    spec = client.get("/api/openapi.json").json
    return {f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item
            if method in METHODS}


def _sections() -> list[str]:
    return [f"{method} {path}" for method, path in SECTION.findall(API_MD.read_text())]


def test_every_operation_of_the_openapi_document_has_a_section_in_docs_api_md(client):
    operations = _operations(client)
    assert len(operations) >= 20, sorted(operations)  # the app fixture serves the whole API, emulator routes too
    documented = set(_sections())
    assert sorted(operations - documented) == [], "document these routes in docs/api.md"


def test_every_route_section_of_docs_api_md_is_an_operation_served(client):
    sections = _sections()
    assert len(sections) == len(set(sections)), "a route has two sections"
    assert sorted(set(sections) - _operations(client)) == [], "docs/api.md documents routes that are not served"


def test_the_section_pattern_reads_the_document_as_written():
    assert SECTION.findall("### `PATCH /api/orders/{orderId}/paid`\n") == [("PATCH", "/api/orders/{orderId}/paid")]
    assert SECTION.findall("see `PATCH /api/orders/{orderId}/paid`\n") == []
