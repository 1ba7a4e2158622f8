"""The layout of the test suite: test modules (`test_*.py`) hold tests; what several of them share
lives in support modules (tests/twin/, tests/model/helpers.py, tests/invariants.py, ...), which
no test module is imported for. Pure Python (runs with `-p no:ape_test`)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(source: str, package: str) -> list[str]:
    """The test modules (last dotted part `test_*`) that `source`, a module of `package`, imports:
    `import tests.test_x`, `from tests.test_x import ...`, `from tests import test_x`, and the
    relative forms (`from .test_x import ...`, `from . import test_x`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.rsplit(".", 1)[-1].startswith("test_")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            if base.rsplit(".", 1)[-1].startswith("test_"):
                found.append(base)
            else:
                found += [f"{base}.{alias.name}" for alias in node.names if alias.name.startswith("test_")]
    return found


def test_tests_import_no_test_module():
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        package = ".".join(path.relative_to(TESTS.parent).parent.parts)
        imported = imported_test_modules(path.read_text(), package)
        if imported:
            offenders[str(path.relative_to(TESTS.parent))] = imported
    assert not offenders, f"test modules imported (move what they share to a support module): {offenders}"


def test_imported_test_modules_finds_every_form():
    source = "\n".join([
        "import tests.test_a",
        "import tests.sim.test_b as b",
        "from tests.test_c import Twin",
        "from tests import test_d, helpers",
        "from .test_e import env",
        "from . import test_f",
        "from ..test_g import x",
        "import tests.twin.harness",
        "from tests.model.helpers import examples",
        "from tests.twin import harness",
    ])
    assert imported_test_modules(source, "tests.regressions") == [
        "tests.test_a", "tests.sim.test_b", "tests.test_c", "tests.test_d", "tests.regressions.test_e",
        "tests.regressions.test_f", "tests.test_g",
    ]
