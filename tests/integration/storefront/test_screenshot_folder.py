"""The README promises that the browser tests say where their screenshots are. They save them in a folder
made by the process that runs them, which under `make test` is an xdist worker whose output nobody sees:
a run as `make test` starts it (two processes, quiet) must still print the folder in its summary."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("screenshot_folder")]

# A module that saves screenshots as tests/integration/storefront/test_storefront.py does.
TESTS = '''
import pytest
from tests.support.screenshots import remember

@pytest.fixture(scope="module")
def screenshots(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp("storefront-screenshots")
    remember(request.config, folder)
    return folder

@pytest.mark.parametrize("step", ["open", "paid"])
def test_a_step(screenshots, step):
    (screenshots / f"{step}.png").write_bytes(b"png")
'''


@pytest.mark.parametrize("workers", [["-n", "2"], ["-p", "no:xdist"]])
def test_a_quiet_run_prints_the_folder_of_its_screenshots(tmp_path, workers):
    (tmp_path / "test_shots.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # a run of its own
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-m", "pytest", *workers, "-q", "-p", "no:randomly", "-p",
                             "no:cacheprovider", "-p", "tests.support.screenshots", "--rootdir", str(tmp_path),
                             str(tmp_path / "test_shots.py")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    said = re.findall(r"^storefront screenshots: (.+)$", result.stdout, re.MULTILINE)
    assert said, result.stdout[-3000:]  # each process that ran some of the module, said where it saved them
    assert sorted(p.name for folder in said for p in Path(folder).glob("*.png")) == ["open.png", "paid.png"]
