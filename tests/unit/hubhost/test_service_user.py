"""The single-box path's service user: what it makes is what the wg_hub unit it installs says."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.hubhost import apply
from meshagents.runtime.appspec import load_app, render_service
from tests.testbed.host import ROOT


def test_the_unit_names_the_user_and_directories_the_step_checks() -> None:
    svc = dict(load_app(ROOT / "meshagents" / "apps" / "wg_hub").service or {})
    text = render_service("wg_hub", svc, Path("/var/lib/meshagents"), launcher="/usr/bin/fn")
    assert f"User={svc['user']}" in text and svc["user"] != "root"
    assert "FN_STATE_DIR=/var/lib/meshagents" in text
    assert "ReadWritePaths=/etc/wireguard" in text


def test_another_state_directory_is_refused_before_anything_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FN_STATE_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(FnError) as err:  # /etc/wireguard: the unit's own (the state is checked next)
        apply.local_service_user(Path("/etc/wireguard"), tmp_path / "wg_hub.toml", ROOT)
    assert err.value.code == "service_mismatch" and "FN_STATE_DIR=/var/lib/meshagents" in err.value.message


def test_another_config_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FnError) as err:
        apply.local_service_user(tmp_path / "wg", tmp_path / "wg_hub.toml", ROOT)
    assert err.value.code == "service_mismatch" and "--config-dir /etc/wireguard" in err.value.message
