"""Installing the package as `make install` does on a fresh clone (`pip install -e .`): quietly. The licence
is an SPDX expression (the form setuptools 77 and later ask for) and the editable install is a plain path
entry, so that the build backend has nothing to warn about on a newcomer's first run."""
import shutil
import subprocess
import sys
import venv

import pytest

from tests.support.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]


def test_an_editable_install_prints_no_warnings_and_names_the_licence(tmp_path):
    # A copy of the tracked files, as a clone has them (the build writes *.egg-info beside them).
    clone = tmp_path / "clone"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, tracked.stdout.split("\0")):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    # Build isolation as in `make install`: the build requirements are fetched into a fresh environment,
    # so this is the setuptools a fresh clone gets. The dependencies are not the point here.
    install = [sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install", "--quiet",
               "--no-deps", "-e", str(clone)]
    result = subprocess.run(install, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    noise = [line for line in output.splitlines()
             if any(word in line for word in ("Warning", "Deprecat", "license", "!!", "*****"))]
    assert noise == [], "\n".join(noise)
    (metadata,) = target.glob("lib/python*/site-packages/orders_service-*.dist-info/METADATA")
    assert "License-Expression: MIT" in metadata.read_text().splitlines()
