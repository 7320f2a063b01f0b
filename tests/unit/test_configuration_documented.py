"""docs/operations.md, "Configuration", documents every environment variable the service reads, and only those.

What is read comes from the code itself: `orders_service/config.py` parsed with `ast` (every `env.get("X")`,
`env["X"]`, and every call that is handed `env` together with a variable's name: `_int(env, "X", …)`,
`_bool(env, "X", …)`, any helper added later), plus the `${X:-…}` of the Procfile's command lines. What is
documented is the first column of the tables of that section.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "orders_service" / "config.py"
OPERATIONS = ROOT / "docs" / "operations.md"
VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _is_env(node: ast.AST) -> bool:
    """`env` (the mapping `Settings.from_env` and its helpers read), or `os.environ`."""
    return (isinstance(node, ast.Name) and node.id == "env") or (
        isinstance(node, ast.Attribute) and node.attr == "environ")


def _names(nodes) -> set[str]:
    return {n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and VARIABLE.match(n.value)}


def variables_read_by(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _is_env(node.value):
            found |= _names([node.slice])
        elif isinstance(node, ast.Call):
            arguments = [*node.args, *(k.value for k in node.keywords)]
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "getenv") and (
                    _is_env(func.value) or (isinstance(func.value, ast.Name) and func.value.id == "os")):
                found |= _names(arguments[:1])
            elif any(_is_env(a) for a in arguments):
                found |= _names(arguments)
    return found


def variables_read_by_procfile(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))


def documented_variables(markdown: str) -> list[str]:
    """The variables named in the first column of the tables under "## Configuration"."""
    section = markdown.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names += re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell)
    return names


def test_every_variable_the_service_reads_is_in_the_configuration_tables():
    read = variables_read_by(CONFIG.read_text()) | variables_read_by_procfile((ROOT / "Procfile").read_text())
    assert len(read) > 30, sorted(read)  # the parser still finds what config.py reads
    assert sorted(read - set(documented_variables(OPERATIONS.read_text()))) == [], \
        "document these in docs/operations.md, Configuration"


def test_the_configuration_tables_name_no_variable_nothing_reads():
    documented = documented_variables(OPERATIONS.read_text())
    assert len(documented) == len(set(documented)), "a variable has two rows"
    read = variables_read_by(CONFIG.read_text()) | variables_read_by_procfile((ROOT / "Procfile").read_text())
    assert sorted(set(documented) - read) == [], "nothing reads these: remove their rows or read them"


def test_the_parser_finds_each_way_config_py_reads_a_variable():
    source = '''
def from_env(env):
    a = env.get("PLAIN")
    b = env.get("WITH_DEFAULT", "x")
    c = env["SUBSCRIPT"]
    d = _int(env, "HELPER", 5, minimum=1)
    e = _choice(env, name="KEYWORD")
    f = os.environ.get("OS_ENVIRON")
    g = ConfigError("NOT_A_READ", "is wrong")
    h = {"DICT_KEY": 1}
'''
    assert variables_read_by(source) == {"PLAIN", "WITH_DEFAULT", "SUBSCRIPT", "HELPER", "KEYWORD", "OS_ENVIRON"}
    assert variables_read_by_procfile("web: gunicorn --bind 0.0.0.0:${PORT:-5000} --threads ${WEB_THREADS:-48}") == \
        {"PORT", "WEB_THREADS"}
    table = ("# Operating\n\n## Configuration\n\n| variable | meaning |\n| --- | --- |\n| `A_B` | uses `C_D` |\n"
             "| `E`, `F` | x |\n\n## Next\n\n| `G` | y |\n")
    assert documented_variables(table) == ["A_B", "E", "F"]
