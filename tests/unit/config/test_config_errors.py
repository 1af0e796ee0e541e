"""Every config file is refused the same way: the file's stable code, and a message that
names the file, the key and the type expected (meshagents.configfile) — never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents import opconfig
from meshagents.apps.agents_and_robots import config as bot_config
from meshagents.apps.agents_dashboard.config import DashConfig
from meshagents.apps.device_agent import config as agent_config
from meshagents.apps.wg_hub import config as hub_config
from meshagents.errors import FnError

pytestmark = pytest.mark.unit

AGENT = {
    "device_id": "d", "device_name": "d", "manifest_path": "m.json", "operator_key": "k",
    "homeserver": "http://h", "matrix_user": "@d:h", "matrix_password": "hunter2-secret",
    "device_room": "!r:h", "approvals_room": "#a:h",
}  # fmt: skip


def _refused(call: object) -> FnError:
    assert callable(call)
    with pytest.raises(FnError) as err:
        call()
    return err.value


def test_hub_config_names_file_key_and_type(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('public_port = "8443"\n')
    err = _refused(lambda: hub_config.load(path))
    assert err.code == "config_invalid"
    assert err.message == f"{path}: public_port: expected an integer (got '8443')"
    assert err.details == {"file": str(path), "key": "public_port", "expected": "an integer"}


def test_hub_config_unknown_and_nested_keys(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("nope: 1\nmatrix:\n  server_name: 7\n")
    err = _refused(lambda: hub_config.load(path))
    assert err.code == "config_invalid"
    assert "nope: expected no such key (unknown key)" in err.message
    assert "matrix.homeserver_url: expected a value (the key is required)" in err.message
    assert "matrix.server_name: expected a string (got 7)" in err.message
    assert err.message.startswith(f"{path}: ")


def test_hub_config_lists_and_choices() -> None:
    err = _refused(lambda: hub_config.from_dict({"approvers": "@op:x"}))
    assert err.details["key"] == "approvers" and err.details["expected"] == "a list"
    err = _refused(lambda: hub_config.from_dict({"manifest_signing": "maybe"}))
    assert err.details["key"] == "manifest_signing" and "'hub' or 'offline'" in err.message


def test_agent_config_names_the_file_and_never_echoes_the_password(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"matrix_password": 12345678, "skew_s": "30"}')
    err = _refused(lambda: agent_config.load(path))
    assert err.code == "agent_config_invalid"
    assert err.message.startswith(f"{path}: ")
    assert "skew_s: expected an integer (got '30')" in err.message
    assert "matrix_password: expected a string" in err.message and "12345678" not in err.message
    assert "device_id: expected a value (the key is required)" in err.message


def test_agent_config_number_and_choice(tmp_path: Path) -> None:
    err = _refused(lambda: agent_config.from_dict({**AGENT, "health_interval_s": 0}, tmp_path))
    assert err.details["key"] == "health_interval_s" and err.details["expected"] == "greater than 0"
    err = _refused(lambda: agent_config.from_dict({**AGENT, "keystore": "vault"}, tmp_path))
    assert err.details["key"] == "keystore" and "'file' or 'pass'" in err.message


def test_bot_settings_names_file_key_and_range(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text("poll_s = 5\ncontrol_hosts = [\"\"]\n")
    err = _refused(lambda: bot_config.load(path))
    assert err.code == "bot_config_invalid"
    assert err.message.startswith(f"{path}: ")
    assert "poll_s: expected less than or equal to 2 (got 5)" in err.message
    assert "control_hosts.0: expected" in err.message
    err = _refused(lambda: bot_config.parse_settings({"control_port": True}))
    assert err.details["key"] == "control_port" and err.details["expected"] == "an integer"


def test_operator_config_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "operator.toml"
    path.write_text('controllers = "k"\ncolour = "red"\n')
    err = _refused(lambda: opconfig.load(path))
    assert err.code == "operator_config_invalid"
    assert err.message == (
        f"{path}: controllers: expected a list (got 'k'); colour: expected no such key (unknown key)"
    )


def test_dashboard_config_names_the_key() -> None:
    err = _refused(lambda: DashConfig(port=70000))
    assert err.code == "config_invalid"
    assert err.message == "dashboard config: port: expected less than 65536 (got 70000)"


def test_agent_config_raises_unusable_limits_and_resolves_paths(tmp_path: Path) -> None:
    cfg = agent_config.from_dict({**AGENT, "max_concurrent": 0, "matrix_output_limit": 10}, tmp_path)
    assert (cfg.max_concurrent, cfg.matrix_output_limit) == (1, 1024)
    assert cfg.data_dir == tmp_path / "." and cfg.store_dir == tmp_path / "matrix-store"
    assert agent_config.from_dict({**AGENT, "sandbox": "weak"}, tmp_path).sandbox is False


def test_matrix_settings_name_file_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshagents.matrix.settings import load_settings

    path = tmp_path / "settings.toml"
    path.write_text('homeserver = "http://h"\noperators = "@op:h"\n')
    monkeypatch.setenv("FN_MATRIX_SETTINGS", str(path))
    err = _refused(load_settings)
    assert err.code == "matrix_not_configured"
    assert err.message == (
        f"{path}: server_name: expected a value (the key is required); "
        "operators: expected a list (got '@op:h')"
    )
