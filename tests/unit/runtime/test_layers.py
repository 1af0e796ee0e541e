"""The layers check: the repository's table refuses each forbidden arrow of a sample tree
(tests/resources/layers) and passes on the repository itself."""

from __future__ import annotations

import pytest

from meshagents.runtime.doctor import run_checks
from meshagents.runtime.doctor.layers import check_outside, check_tree, load_table
from tests.testbed.host import ROOT

pytestmark = pytest.mark.unit

SAMPLE = ROOT / "tests" / "resources" / "layers"
TABLE = ROOT / "meshagents" / "layers.toml"


def test_each_forbidden_import_of_the_sample_is_an_error_and_nothing_else() -> None:
    found = {(p.level, p.where, p.message) for p in check_tree(SAMPLE, TABLE)}
    assert found == {
        ("error", "meshagents/wg/hub.py:5",
         "library may not import functions: meshagents.functions.wg.wg_keygen"),
        ("error", "meshagents/wg/uapi.py:1",
         "library may not import functions: meshagents.functions.wg.wg_keygen"),
        ("error", "meshagents/runtime/doctor.py:1", "runtime may not import apps: meshagents.apps.hub.store"),
        ("error", "meshagents/runtime/cli.py:1",
         "entry may not import testbed at import time (only inside a function): meshagents.testbed.demo"),
        ("error", "meshagents/apps/bot/main.py:1",
         "apps stand alone: meshagents.apps.bot.main imports meshagents.apps.hub.store"),
        ("error", "meshagents/stray.py", "meshagents.stray is in no layer of meshagents/layers.toml"),
    }


def test_the_repository_follows_its_layers() -> None:
    assert run_checks(ROOT, ["layers"])["layers"] == []


def test_the_table_names_only_known_layers() -> None:
    layers = load_table(TABLE)
    for layer in layers.values():
        assert layer.may_import <= layers.keys() and layer.lazy <= layers.keys(), layer.name
    # the rules docs/architecture.md states
    assert "functions" not in layers["library"].may_import and "apps" not in layers["library"].may_import
    assert "apps" not in layers["runtime"].may_import and "testbed" not in layers["runtime"].may_import
    assert layers["apps"].separate


def test_bench_and_the_test_bed_may_not_import_conftests_or_test_areas() -> None:
    found = {(p.where, p.message) for p in check_outside(SAMPLE, TABLE)}
    assert found == {
        ("bench/bench_sample.py:1", "bench may not import tests.integration.apps.wg_hub.conftest "
         "(shared rigs live in tests/testbed)"),
        ("tests/testbed/sample_rig.py:2", "testbed may not import tests.unit.apps.device_agent "
         "(shared rigs live in tests/testbed)"),
    }
