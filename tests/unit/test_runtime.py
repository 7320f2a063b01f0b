"""Importing the service's modules has no side effects; the entry points prepare their process."""
import json
import subprocess
import sys

from tests.support.processes import ROOT

IMPORT_EVERYTHING = """
import importlib, json, os, pkgutil, sys
import orders_service
before = dict(os.environ)
names = [m.name for m in pkgutil.walk_packages(orders_service.__path__, "orders_service.")
         if m.name != "orders_service.server.wsgi"]  # the gunicorn entry point prepares its process on purpose
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": len(names),
                  "env_changed": sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k)),
                  "instance_exists": os.path.exists(os.environ["ORDERS_INSTANCE_DIR"])}))
"""


def _run(code, env_extra, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ORDERS_INSTANCE_DIR": str(tmp_path / "instance"), **env_extra}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_every_module_creates_no_folder_and_sets_no_variable(tmp_path):
    seen = _run(IMPORT_EVERYTHING, {}, tmp_path)
    assert seen["modules"] > 30
    assert seen["env_changed"] == [] and seen["instance_exists"] is False


def test_the_services_import_no_web_framework(tmp_path):
    code = ("import sys; import orders_service.payments.checkout, orders_service.payments.inbox, "
            "orders_service.payments.reconcile, orders_service.notifications.outbox; "
            "import json; print(json.dumps({'flask': [m for m in sys.modules if m.split('.')[0] in "
            "('flask', 'flask_jwt_extended', 'flask_smorest', 'werkzeug')]}))")
    assert _run(code, {}, tmp_path) == {"flask": []}


def test_the_worker_entry_point_prepares_the_metrics_folder(tmp_path):
    code = "import os, json, workers.celery_app; print(json.dumps({'dir': os.environ['PROMETHEUS_MULTIPROC_DIR']}))"
    seen = _run(code, {"JWT_SECRET_KEY": "k" * 20}, tmp_path)
    assert seen["dir"] == str(tmp_path / "instance" / "metrics")
    assert (tmp_path / "instance" / "metrics").is_dir()
