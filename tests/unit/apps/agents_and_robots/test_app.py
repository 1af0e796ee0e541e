"""app.md front matter, the systemd unit and the offline entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshagents.apps.agents_and_robots.__main__ import main
from meshagents.runtime.appspec import load_app, missing_service_keys, render_unit
from meshagents.runtime.doctor.usage_scan import tree_calls
from tests.testbed.host import ROOT

pytestmark = pytest.mark.unit

APP_DIR = ROOT / "meshagents" / "apps" / "agents_and_robots"


def test_front_matter_complete_and_uses_functions_match_code() -> None:
    spec = load_app(APP_DIR)
    assert spec.front["name"] == "agents_and_robots" and spec.front["summary"]
    assert spec.service is not None and missing_service_keys(spec.service) == []
    assert spec.service["exec"] == "fn app agents_and_robots"
    assert sorted(spec.uses_functions or []) == sorted(tree_calls(APP_DIR))
    checks = spec.e2e_checks
    assert checks and all(c["id"].startswith(("bot_", "e2e_")) for c in checks)
    for check in checks:  # each named integration test exists
        file, _, name = check["test"].partition("::")
        assert f"def {name}(" in (APP_DIR.parents[2] / file).read_text()
    unit = render_unit(spec, Path("/opt/meshagents"))
    assert "ExecStart=/opt/meshagents/fn app agents_and_robots" in unit
    assert 'Environment="FN_STATE_DIR=/var/lib/meshagents"' in unit


def test_entry_point_parse(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    view = tmp_path / "view.json"
    view.write_text(json.dumps({"shell.exec": {"allowed_executables": ["/bin/ls"]}}))
    assert main(["--parse", "!exec rm -rf /", "--view", str(view)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        out["kind"] == "Command"
        and out["precheck"]["text"] == "capability rejected: shell.exec.rm not in manifest"
    )
    assert main(["--parse", "!exce"]) == 1
    assert json.loads(capsys.readouterr().out)["code"] == "unknown_command"
    assert main(["--help-for", "home-wsl", "--view", str(view)]) == 0
    assert "device home-wsl" in capsys.readouterr().out
    # running the bot without Matrix settings: a clean error, exit 1
    monkeypatch.setenv("FN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("FN_MATRIX_SETTINGS", raising=False)
    assert main([]) == 1
    assert json.loads(capsys.readouterr().err)["error"] == "matrix_not_configured"
