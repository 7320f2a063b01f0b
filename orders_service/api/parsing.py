"""Reading request bodies: Flask's JSON with integers no wider than the service stores, and webargs'
parser answering 400 for a body that fails validation (docs/api.md, "Errors")."""
from __future__ import annotations

import json

from flask import current_app
from flask.json.provider import DefaultJSONProvider
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request

# The widest integer the service stores (BIGINT). Longer digit strings are refused before int() sees
# them: past 4,300 digits int() raises ValueError (CPython's guard against quadratic conversion).
MAX_INT_DIGITS = 19


class OversizedInteger:
    """A JSON integer wider than the service stores, read without converting it. It reaches the schema in
    its field's place, so the field refuses it by name (the contract's field-level `errors`); no field
    takes it as a number."""

    __slots__ = ("digits",)

    def __init__(self, digits: int):
        self.digits = digits

    def __repr__(self) -> str:
        return f"<an integer of {self.digits} digits>"


def _bounded_int(digits: str) -> int | OversizedInteger:
    width = len(digits) - digits.startswith("-")
    return OversizedInteger(width) if width > MAX_INT_DIGITS else int(digits)


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading integers no wider than the service stores (every request body comes here)."""

    def loads(self, s, **kwargs):
        kwargs.setdefault("parse_int", _bounded_int)
        return super().loads(s, **kwargs)


class Parser(FlaskParser):
    # The API answers 400 for a body that fails validation; 422 is kept for Idempotency-Key reuse.
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return missing
        try:
            return current_app.json.loads(req.get_data(cache=True))
        except RecursionError:  # absurdly nested JSON: not a body we read
            return self._handle_invalid_json_error(json.JSONDecodeError("too deeply nested", "", 0), req)
        except UnicodeDecodeError as exc:
            return self._handle_invalid_json_error(exc, req)
