"""A pytest plugin (tests/conftest.py loads it): where the browser tests save their screenshots, said in the
run's summary. The folder is made in the process that runs the tests — under xdist a worker, whose own
output nobody sees — so a worker hands it to the controlling process, which prints it."""
from __future__ import annotations

from pathlib import Path

import pytest

FOLDERS = pytest.StashKey[list]()
_WORKER_OUTPUT = "storefront_screenshots"


def remember(config: pytest.Config, folder: Path) -> None:
    """The test process made `folder`: for the summary (this process's, or through xdist the controller's)."""
    config.stash.setdefault(FOLDERS, []).append(str(folder))
    if hasattr(config, "workeroutput"):  # an xdist worker: sent to the controller when the worker finishes
        config.workeroutput[_WORKER_OUTPUT] = str(folder)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """An xdist worker finished: the screenshot folder it made, if any."""
    folder = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if folder:
        node.config.stash.setdefault(FOLDERS, []).append(folder)


def pytest_terminal_summary(terminalreporter):
    for folder in terminalreporter.config.stash.get(FOLDERS, []):
        terminalreporter.write_line(f"storefront screenshots: {folder}")
