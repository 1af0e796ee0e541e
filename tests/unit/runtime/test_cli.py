"""The fn CLI through click's CliRunner: outputs, exit codes, error JSON."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshagents.functions.wg.wg_keygen import public_from_private
from meshagents.runtime import telemetry
from meshagents.runtime.cli import cli

pytestmark = pytest.mark.unit


@pytest.fixture
def runner(state_dir: Path) -> CliRunner:
    return CliRunner()


def test_list_and_show(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["list", "--json"])
    assert res.exit_code == 0, res.output
    ids = [e["id"] for e in json.loads(res.output)]
    assert "wg_keygen" in ids
    res = runner.invoke(cli, ["show", "wg_keygen"])
    assert res.exit_code == 0
    shown = json.loads(res.output)
    assert shown["module"] == "meshagents.functions.wg.wg_keygen"
    assert shown["params"][0]["name"] == "preshared"


def test_run_prints_json_and_records_telemetry(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["run", "wg_keygen", "--preshared"])
    assert res.exit_code == 0, res.output
    keys = json.loads(res.stdout)
    assert set(keys) == {"private_key", "public_key", "preshared_key"}
    assert len(base64.b64decode(keys["private_key"])) == 32
    assert public_from_private(keys["private_key"]) == keys["public_key"]
    rows = telemetry.recent("wg_keygen")
    assert rows[0]["caller"] == "cli" and rows[0]["success"] == 1
    res = runner.invoke(cli, ["stats", "--json"])
    stats = {r["function_id"]: r for r in json.loads(res.output)}
    assert stats["wg_keygen"]["count"] == 1


def test_public_key_matches_wg_pubkey(runner: CliRunner) -> None:
    if shutil.which("wg") is None:
        pytest.skip("needs wireguard-tools (installed by .ci/run)")
    keys = json.loads(runner.invoke(cli, ["run", "wg_keygen"]).stdout)
    out = subprocess.run(["wg", "pubkey"], input=keys["private_key"] + "\n", capture_output=True, text=True)
    assert out.stdout.strip() == keys["public_key"]


def test_unknown_id_exits_2_with_suggestions(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["run", "wg_keygn"])
    assert res.exit_code == 2
    err = json.loads(res.stderr)
    assert err["error"] == "unknown_function"
    assert "wg_keygen" in err["suggestions"]


def test_bad_usage_exits_2(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["run", "wg_keygen", "--no-such-option"])
    assert res.exit_code == 2
    assert json.loads(res.stderr)["error"] == "bad_usage"


def test_run_help(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["run", "wg_keygen", "--help"])
    assert res.exit_code == 0
    assert "--preshared / --no-preshared" in res.output


def test_failure_exits_1_with_error_json(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import meshagents.functions.wg.wg_keygen as mod
    from meshagents.errors import FnError

    def boom(preshared: bool = False) -> dict[str, str]:
        raise FnError("demo_failure", "it broke")

    boom.__fn_meta__ = mod.wg_keygen.__fn_meta__  # type: ignore[attr-defined]
    monkeypatch.setattr(mod, "wg_keygen", boom)
    res = runner.invoke(cli, ["run", "wg_keygen"])
    assert res.exit_code == 1
    assert json.loads(res.stderr) == {"error": "demo_failure", "message": "it broke"}
    assert telemetry.recent("wg_keygen")[0]["error_code"] == "demo_failure"


def test_unexpected_exception_is_internal_error(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import meshagents.functions.wg.wg_keygen as mod

    def boom(preshared: bool = False) -> dict[str, str]:
        raise ZeroDivisionError("x")

    boom.__fn_meta__ = mod.wg_keygen.__fn_meta__  # type: ignore[attr-defined]
    monkeypatch.setattr(mod, "wg_keygen", boom)
    res = runner.invoke(cli, ["run", "wg_keygen"])
    assert res.exit_code == 1
    assert json.loads(res.stderr)["error"] == "internal_error"


def test_index_check_passes_on_repo(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["index", "--check"])
    assert res.exit_code == 0, res.output


def test_service_render_unknown_app(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["service", "render", "no_such_app"])
    assert res.exit_code == 1
    assert json.loads(res.stderr)["error"] == "app_not_found"
