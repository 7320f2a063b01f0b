"""The Blueprint every API route is declared on, and what it writes into the OpenAPI document.

Decorators record what they know about a route in its `_apidoc` (flask-smorest's own convention), and
the Blueprint turns that into the document through flask-smorest's documentation callbacks
(`_prepare_doc_cbks`, as bemserver-api's authentication does):

- every operation gets an `operationId` from its view's name (what a generated client calls it);
- `security.authenticated` marks a route as needing a token (401, and 403 for the admin's); any other
  route is public (`security: []`): the document says what the decorator enforces, nothing else;
- a route with a path parameter can answer 404, and a rate-limited one 429.

A route documents its own further errors with `alt_response`.
"""
from __future__ import annotations

import re
from copy import deepcopy
from http import HTTPStatus

import flask_smorest
from apispec import BasePlugin

from orders_service.api.parsing import Parser


def camel_case(name: str) -> str:
    """`place_order_with_payment` → `placeOrderWithPayment`: operation ids and path parameters alike."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def document(view, **info):
    """Record `info` about `view` for the documentation callbacks (a copy: wrappers share the dict)."""
    view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
    view._apidoc.update(info)
    return view


def _add_responses(doc: dict, statuses) -> None:
    responses = doc.setdefault("responses", {})
    for status in statuses:
        if status not in responses and str(status) not in responses:
            responses[str(status)] = HTTPStatus(status).name  # flask-smorest's error-body response


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the API's validation status (400) and a document generators can use."""

    ARGUMENTS_PARSER = Parser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_contract_doc)

    def route(self, rule, **options):
        register = super().route(rule, **options)

        def decorator(view):
            return register(document(view, operation_id=camel_case(view.__name__), path_parameters="<" in rule))

        return decorator

    def arguments(self, schema, *args, **kwargs):
        # webargs builds a schema per request when handed a class (a third of the parsing cost on the
        # order path); one instance per route is safe: loading keeps no state on the schema.
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)

    def alt_response(self, status_code, response=None, *, schema=None, **kwargs):
        # An error documented by its description alone still has the API's error body: say so, or a
        # generated client reads nothing from it.
        if response is None and schema is None and int(status_code) >= 400:
            schema = flask_smorest.Api.ERROR_SCHEMA
        return super().alt_response(status_code, response, schema=schema, **kwargs)

    @staticmethod
    def _prepare_contract_doc(doc, doc_info, **_kwargs):
        doc["operationId"] = doc_info["operation_id"]
        role = doc_info.get("auth")
        if role is None:
            doc["security"] = []  # public: no token needed
        else:
            _add_responses(doc, [401] if role == "any" else [401, 403])
        if doc_info.get("path_parameters"):
            _add_responses(doc, [404])
        if doc_info.get("rate_limit"):
            _add_responses(doc, [429])
        return doc


class CamelCasePathParameters(BasePlugin):
    """The document names path parameters as docs/api.md does (`{orderId}`), not as Flask's rules do
    (`{order_id}`): a generated client's arguments then match the documented names."""

    def path_helper(self, path=None, operations=None, parameters=None, **kwargs):
        for parameter in parameters or ():
            if isinstance(parameter, dict) and parameter.get("in") == "path":
                parameter["name"] = camel_case(parameter["name"])
        return re.sub(r"\{(\w+)\}", lambda m: "{" + camel_case(m.group(1)) + "}", path) if path else None
