"""A clone stands alone: no tracked file (code, test, doc, script, comment, recorded result) names a path
outside the repository, or a document that only exists beside one checkout of it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each pattern is written so that it does not match this file's own text.
OUTSIDE = {
    "a sibling folder of the checkout": re.compile(r"\.\./shared"),
    "this machine's work folders": re.compile(r"/wor[k]/"),
    "a contract document that is not in the repository": re.compile(r"\bCONTRAC[T]\b"),
    "the emulator's notes that are not in the repository": re.compile(r"localstripe\.m[d]"),
}


def _tracked_text_files() -> dict[str, str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = {}
    for name in filter(None, listed.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data:  # binary (images): nothing a reader follows
            continue
        files[name] = data.decode("utf-8", errors="replace")
    return files


def _hits(pattern: re.Pattern, files: dict[str, str]) -> list[str]:
    return [f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}"
            for name, text in files.items() for match in pattern.finditer(text)]


@pytest.fixture(scope="module")
def tracked():
    files = _tracked_text_files()
    assert len(files) > 100, "git ls-files found too few files: is this a git checkout?"
    return files


@pytest.mark.parametrize("what", OUTSIDE)
def test_no_tracked_file_points_outside_the_repository(tracked, what):
    assert _hits(OUTSIDE[what], tracked) == [], f"{what}: say it in the project's own docs instead"


def _checkout_path() -> re.Pattern:
    checkout = str(ROOT)
    assert checkout.count("/") >= 2, checkout  # a path this short would match everything
    return re.compile(re.escape(checkout) + r"(?![\w.-])")


def test_no_tracked_file_names_this_checkouts_absolute_path(tracked):
    assert _hits(_checkout_path(), tracked) == []


def test_the_patterns_catch_what_they_are_for():
    samples = {  # written in pieces: whole, they would be hits in this file
        "a sibling folder of the checkout": "see ../" + "shared/notes",
        "this machine's work folders": "/wo" + "rk/main/bench",
        "a contract document that is not in the repository": "(CONTR" + "ACT §5)",
        "the emulator's notes that are not in the repository": "localstripe." + "md §5",
    }
    for what, text in samples.items():
        assert OUTSIDE[what].search(text), what
    contract = OUTSIDE["a contract document that is not in the repository"]
    assert contract.search("CONTR" + "ACT.md") and contract.search("the CONTR" + "ACT says")
    assert not contract.search("[[tool.importlinter.contracts]]") and not contract.search("the API contract")
    assert _checkout_path().search(f"--pythonpath {ROOT}/bench/reference app:app")
    assert not _checkout_path().search(f"{ROOT}-other/bench")
