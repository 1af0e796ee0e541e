"""Per-run names never come from Python's global ``random``.

pytest-randomly (the suite's random order) re-seeds ``random`` before every test with the
run's seed: a namespace, interface, Matrix user, port or suffix drawn from it would be the
same in two tests of a run, and in two runs given the same seed (``--randomly-seed=N`` to
replay one). Names come from ``secrets`` / ``os.urandom`` / ``uuid4`` instead; a
``random.Random()`` instance of one's own (seeded from the OS) is not re-seeded and is
fine for jitter.
"""

from __future__ import annotations

import ast
import random

import pytest

from meshagents.testbed.rig.names import RunNames
from tests.testbed.host import ROOT

pytestmark = pytest.mark.unit

# everything a test run imports; bench/ is not run by the tests (its random.uniform is jitter)
SCANNED = ("meshagents", "tests")
OWN_GENERATORS = {"Random", "SystemRandom"}  # instances not touched by random.seed()
# uses that make no name: replayed by the seed, which is what we want of them
ALLOWED = {
    "tests/unit/trust/test_canonical.py": {"random.shuffle"},  # dict key order, under hypothesis
    "tests/unit/testbed/test_names_not_from_random.py": {"random.seed"},  # this file's own check
}


def global_random_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each use of the module-level generator of ``random``."""
    modules: set[str] = set()
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "random"}
        elif isinstance(node, ast.ImportFrom) and node.module == "random":
            found += [(node.lineno, f"from random import {a.name}") for a in node.names
                      if a.name not in OWN_GENERATORS]  # fmt: skip
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr not in OWN_GENERATORS
        ):
            found.append((node.lineno, f"random.{node.attr}"))
    return found


def test_no_module_draws_from_the_global_random() -> None:
    offenders = [
        f"{rel}:{line}: {what}"
        for top in SCANNED
        for path in sorted((ROOT / top).rglob("*.py"))
        for rel in [path.relative_to(ROOT).as_posix()]
        for line, what in global_random_uses(ast.parse(path.read_text(), rel))
        if what not in ALLOWED.get(rel, set())
    ]
    hint = "use secrets/os.urandom/uuid4 (see the module docstring):\n"
    assert offenders == [], hint + "\n".join(offenders)


def test_the_scan_sees_what_it_refuses() -> None:
    src = "import random as r\nfrom random import choice, Random\nx = r.randint(1, 2)\ny = r.Random()\n"
    tree = ast.parse(src)
    assert global_random_uses(tree) == [(2, "from random import choice"), (3, "random.randint")]


def test_run_names_differ_under_the_same_seed() -> None:
    random.seed(1161599966)
    first = RunNames.new()
    random.seed(1161599966)
    assert RunNames.new() != first
