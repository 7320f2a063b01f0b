"""Text PostgreSQL cannot store: NUL characters, and lone UTF-16 surrogates (JSON's "\\ud800" escapes
decode to them; UTF-8, so psycopg and argon2, cannot encode them)."""
from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_text_problem(text: str) -> str | None:
    """Why PostgreSQL cannot store `text`, or None when it can."""
    if "\x00" in text:
        return "Must not contain NUL characters."
    if _UNSTORABLE.search(text):
        return "Must not contain unpaired UTF-16 surrogates."
    return None


def storable(value):
    """`value` (JSON: dicts, lists, strings, …) with every unstorable character replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value
