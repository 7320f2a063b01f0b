"""Stripe's own example objects, as real Stripe sends them: the tests build SDK objects from them and compare
the shapes the real-shaped proxy (`stripe_proxy.py`) sends against them.

`stripe_fixtures.json` beside this file holds the objects the tests use (`payment_intent`, `charge`, `refund`,
`event`, `dispute`), unchanged, copied from Stripe's public `stripe/openapi` repository
(github.com/stripe/openapi, `openapi/fixtures3.json`, commit f6c2a48 of 2026-08-21), which Stripe, Inc.
publishes under the MIT licence. Its `_source` key says the same.
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

FILE = Path(__file__).with_name("stripe_fixtures.json")


@lru_cache(maxsize=1)
def _loaded() -> dict:
    return json.loads(FILE.read_text())


def stripe_fixtures() -> dict:
    """Every vendored object by its resource name (`payment_intent`, `charge`, …): a copy to change at will."""
    return copy.deepcopy({name: obj for name, obj in _loaded().items() if not name.startswith("_")})
