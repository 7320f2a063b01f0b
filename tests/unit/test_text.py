"""What PostgreSQL cannot store (NUL, lone surrogates): recognised, and replaced where text must be kept."""
import pytest

from orders_service.text import storable, unstorable_text_problem


@pytest.mark.parametrize("text", ["plain", "café", "😀 a paired surrogate, once decoded", "", "\ufffd", "\u2028"])
def test_storable_text_has_no_problem(text):
    assert unstorable_text_problem(text) is None
    assert storable(text) == text


@pytest.mark.parametrize("text, problem", [
    ("a\x00b", "NUL"), ("\ud800", "surrogate"), ("x\udfff", "surrogate"), ("\ud83d alone", "surrogate"),
])
def test_unstorable_text_is_named(text, problem):
    assert problem in unstorable_text_problem(text)


def test_storable_replaces_in_keys_and_values_at_any_depth_and_leaves_other_values():
    payload = {"a\x00": ["x\ud800", {"\udfff": 1.5, "n": None, "t": True}], "k": 7}
    assert storable(payload) == {"a\ufffd": ["x\ufffd", {"\ufffd": 1.5, "n": None, "t": True}], "k": 7}
    assert storable(payload["k"]) == 7
