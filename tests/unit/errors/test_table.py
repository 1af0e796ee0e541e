"""The error-code table (meshagents/errors.toml): every code raised is listed, nothing listed
is dead, docs/errors.md is rendered from it, and the CLI exits with a code's status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshagents.errors import FnError, UnknownFunction, UsageError, load_codes
from meshagents.runtime.cli import cli
from meshagents.runtime.errordoc import DOC, build, scan_codes, table_problems
from tests.testbed.host import ROOT

pytestmark = pytest.mark.unit


def test_every_raised_code_is_in_the_table_and_none_is_dead() -> None:
    problems, _ = build(ROOT)
    assert problems == []


def test_docs_errors_md_is_the_rendered_table() -> None:
    _, text = build(ROOT)
    assert (ROOT / DOC).read_text(encoding="utf-8") == text


def test_the_scan_sees_each_way_a_code_is_written(tmp_path: Path) -> None:
    pkg = tmp_path / "meshagents"
    pkg.mkdir()
    (pkg / "sample.py").write_text(
        "from meshagents.errors import FnError\n"
        "class Boom(FnError):\n"
        "    def __init__(self, m):\n"
        "        super().__init__('boom_subclass', m)\n"
        "def f(x, code='from_default'):\n"
        "    check(x, code='from_keyword')\n"
        "    raise FnError('plain', 'm')\n"
        "def g(x, exc):\n"
        "    raise FnError('a_branch' if x else 'b_branch', 'm')\n"
        "def h(code, status):\n"
        "    raise FnError(str(code or 'fallback'), 'm')\n"
        "def i(status, exc):\n"
        "    raise FnError(f'svc_http_{status}', 'm')\n"
        "def j(exc):\n"
        "    raise FnError(exc.code, 'passed through adds nothing')\n"
        "def k():\n"
        "    raise Boom('m')\n"
        "def _refused(where, code, message):\n"
        "    return FnError(code, message)\n"
        "def l():\n"
        "    raise _refused('x', 'via_helper', 'm')\n"
        "class Parsed:\n"
        "    def to_fn_error(self):\n"
        "        return FnError(self.code, 'm')\n"
        "def m():\n"
        "    return Parsed('via_class', 'm')\n"
        "def classify(err):\n"
        "    return 'returned_a' if err else 'returned_b'\n"
        "def n(err):\n"
        "    code = classify(err)\n"
        "    raise FnError(code, 'm')\n",
        encoding="utf-8",
    )
    found = scan_codes(tmp_path)
    assert set(found) == {
        "boom_subclass", "from_default", "from_keyword", "plain", "a_branch", "b_branch", "fallback",
        "svc_http_*", "via_helper", "via_class", "returned_a", "returned_b",
    }
    assert found["plain"] == {"meshagents.sample"}


def test_a_code_missing_from_the_table_and_a_dead_row_are_both_reported() -> None:
    codes = load_codes()
    raised = {"bad_usage": {"meshagents.x"}, "never_listed": {"meshagents.y"}}
    problems = table_problems({c: codes[c] for c in ("bad_usage", "token_used")}, raised)
    assert any("never_listed" in p and "meshagents.y" in p for p in problems)
    assert any("token_used" in p and "raised nowhere" in p for p in problems)


def test_usage_errors_exit_2_however_they_are_raised() -> None:
    assert FnError("bad_usage", "x").exit_code == 2
    assert UsageError("x").exit_code == 2
    assert UnknownFunction("nope", []).exit_code == 2
    assert FnError("token_used", "x").exit_code == 1
    assert FnError("a_code_nobody_listed", "x").exit_code == 1


def test_the_cli_exits_2_on_a_bad_usage_raised_inside_a_function(state_dir: Path) -> None:
    res = CliRunner().invoke(cli, ["run", "hub_mesh_check", "--url", "ftp://10.42.0.1/healthz"])
    assert res.exit_code == 2, res.output
    assert json.loads(res.stderr)["error"] == "bad_usage"
