"""Reading request bodies: Flask's JSON with integers no wider than the service stores, and webargs'
parser answering 400 for a body that fails validation (docs/api.md, "Errors")."""
from __future__ import annotations

import json

from flask import current_app
from flask.json.provider import DefaultJSONProvider
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request

from orders_service.errors import InvalidRequest

# The widest integer the service stores (BIGINT). Longer digit strings are refused before int() sees
# them: past 4,300 digits int() raises ValueError (CPython's guard against quadratic conversion).
MAX_INT_DIGITS = 19


class IntegerTooLong(ValueError):
    pass


def _bounded_int(digits: str) -> int:
    if len(digits) - digits.startswith("-") > MAX_INT_DIGITS:
        raise IntegerTooLong(digits[:20])
    return int(digits)


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
        except IntegerTooLong:
            raise InvalidRequest(f"Request body has an integer of more than {MAX_INT_DIGITS} digits, "
                                 "more than the service stores") from None
        except RecursionError:  # absurdly nested JSON: not a body we read
            return self._handle_invalid_json_error(json.JSONDecodeError("too deeply nested", "", 0), req)
        except UnicodeDecodeError as exc:
            return self._handle_invalid_json_error(exc, req)
