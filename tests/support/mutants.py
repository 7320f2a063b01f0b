"""`make mutate`'s report: the mutation score of the pure core, and every surviving mutant that no unit
test explains (in a module-level `SURVIVING_MUTANTS = {name: why}` of a unit test module).

    .venv/bin/python -m tests.support.mutants     # after `mutmut run`; exits 1 on an unexplained survivor
"""
from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from collections import Counter

import tests.unit


def _explained() -> dict[str, str]:
    explained = {}
    for module in pkgutil.walk_packages(tests.unit.__path__, "tests.unit."):
        explained.update(getattr(importlib.import_module(module.name), "SURVIVING_MUTANTS", {}))
    return explained


def main() -> int:
    listing = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True,
                             text=True, check=True).stdout
    status = dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+)$", listing, re.M))
    counts = Counter(status.values())
    survivors = sorted(name for name, state in status.items() if state == "survived")
    explained = _explained()
    unexplained = [name for name in survivors if name not in explained]
    tested = len(status) - counts["no tests"]
    print(f"{len(status)} mutants: {counts['killed']} killed, {len(survivors)} survived "
          f"({len(survivors) - len(unexplained)} explained), {counts['no tests']} not reached by a unit test, "
          f"{counts['timeout']} timed out; score {counts['killed'] / tested:.1%} of those tested")
    for name in survivors:
        print(f"  {'explained' if name in explained else 'UNEXPLAINED'}: {name}"
              + (f" — {explained[name]}" if name in explained else ""))
    for name in sorted(set(explained) - set(survivors)):
        print(f"  (explained but no longer surviving: {name}; drop it from SURVIVING_MUTANTS)")
    return 1 if unexplained or counts["no tests"] else 0


if __name__ == "__main__":
    sys.exit(main())
