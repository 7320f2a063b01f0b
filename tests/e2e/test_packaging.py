"""Building the package as `make install` does on a fresh clone: quietly, the licence given as an SPDX
expression (the form setuptools 77 and later ask for), so that the build backend has nothing to warn about."""
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.support.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]


def test_the_build_prints_no_warnings_and_names_the_licence(tmp_path):
    # A copy of the tracked files, as a clone has them (the build writes build/ and *.egg-info beside them).
    source = tmp_path / "clone"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, tracked.stdout.split("\0")):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    # Build isolation as `pip install -e .` uses it: the build requirements are fetched into a fresh
    # environment, so this is the setuptools a fresh clone gets.
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp_path), str(source)]
    result = subprocess.run(build, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    noise = [line for line in output.splitlines()
             if any(word in line for word in ("BuildBackendWarning", "Deprecat", "license", "!!"))]
    assert noise == [], "\n".join(noise)
    (wheel,) = tmp_path.glob("orders_service-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: MIT" in metadata.splitlines()
