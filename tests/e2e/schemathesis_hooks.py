"""Schemathesis hooks (SCHEMATHESIS_HOOKS): every generated JSON body is also sent with the inputs that
used to make 500s (issue 14), which a schema-driven generator never draws on its own: a lone UTF-16
surrogate, a NUL, an integer of more than 4,300 digits, a boolean written as a string. Each goes into a
leaf of the kind it attacks when the body has one, else into a field of its own (the body is parsed,
and its text stored or hashed, before unknown fields are refused)."""
import copy
import sys

import schemathesis
from hypothesis import strategies as st

sys.set_int_max_str_digits(0)  # so that this process can write the huge integer into a request body

HUGE = 10**5000


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))
    else:
        yield path, node


def _replace(body, path, value):
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def _variant(body, kind, new_value, fallback_key):
    """`body` with its first leaf of `kind` replaced by new_value(leaf), or with a field of its own."""
    for path, leaf in _leaves(body):
        if path and isinstance(leaf, kind) and (kind is not int or not isinstance(leaf, bool)):
            return _replace(body, path, new_value(leaf))
    return {**body, fallback_key: new_value(None)}


def _hostile(body):
    return [
        _variant(body, str, lambda s: f"{s or ''}\ud800", "\udfffsurrogate"),
        _variant(body, str, lambda s: f"{s or ''}\x00", "nul\x00"),
        _variant(body, int, lambda _i: HUGE, "hugeInteger"),
        _variant(body, int, lambda _i: -HUGE, "hugeNegative"),
        _variant(body, bool, lambda b: "yes" if b or b is None else "no", "booleanAsString"),
    ]


@schemathesis.hook
def flatmap_body(ctx, body):
    if not isinstance(body, dict):
        return st.just(body)
    return st.sampled_from([body, *_hostile(body)])
