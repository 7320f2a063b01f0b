"""`make lint` keeps the rooms apart (import-linter, `[tool.importlinter]` in pyproject.toml): a deliberate
wrong import, in a copy of the package, breaks the contract that forbids it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=_env(tree), capture_output=True,
                          text=True, timeout=120)


def _env(tree: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(tree))  # the copy, not the installed package


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    copy = tmp_path_factory.mktemp("lint")
    for name in ("orders_service", "workers"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_tree_as_it_is_keeps_every_contract(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    found = subprocess.run([sys.executable, "-c", "import orders_service; print(orders_service.__file__)"],
                           cwd=tree, env=_env(tree), capture_output=True, text=True).stdout
    assert found.startswith(str(tree))  # what the check above read is the copy


@pytest.mark.parametrize("module, wrong_import, contract", [
    ("orders_service/orders/service.py", "from orders_service.payments import checkout",
     "orders does not import payments"),
    ("orders_service/payments/decisions.py", "import flask", "imports a web framework"),
    ("orders_service/notifications/outbox.py", "from orders_service.api import context", "imports a web framework"),
    ("workers/tasks.py", "from orders_service.api import context", "imports a web framework"),
    ("orders_service/payments/stripe_gateway.py", "from orders_service.server.gate import outside_gate",
     "Dependencies point one way"),
    ("orders_service/api/orders/routes.py", "from orders_service.server import gate", "the server's"),
    ("orders_service/catalog/service.py", "from orders_service.orders import stock", "Dependencies point one way"),
])
def test_a_wrong_import_breaks_its_contract(tree, module, wrong_import, contract):
    path = tree / module
    original = path.read_text()
    path.write_text(original + f"\n{wrong_import}  # noqa\n")
    try:
        result = _lint(tree)
    finally:
        path.write_text(original)
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert result.returncode != 0 and contract in broken.replace("\n", " "), result.stdout
