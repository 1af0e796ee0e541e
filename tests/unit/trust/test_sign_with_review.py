"""capability_manifest_sign with a profile: shown, refused beyond it, signed with --allow;
enrollment_token_create pins the profile's hash and records it on the operator's machine."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from meshagents import opconfig
from meshagents.errors import FnError
from meshagents.runtime.api import call
from meshagents.trust import manifest as manifest_mod
from meshagents.trust import tokens
from meshagents.trust.keystore import OPERATOR_KEY, init_signing_key
from meshagents.trust.review import profile_sha256
from meshagents.trust.signing import public_b64

CONTROLLER = public_b64(SigningKey(bytes(32)))
OTHER = public_b64(SigningKey(bytes([1]) * 32))


@pytest.fixture
def operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FN_KEYSTORE", "file")
    cfg = tmp_path / "operator.toml"
    cfg.write_text(f'controllers = ["{CONTROLLER}"]\napprovers = ["@op:hub"]\n')
    monkeypatch.setenv("FN_OPERATOR_CONFIG", str(cfg))
    key, _ = init_signing_key(OPERATOR_KEY)
    return public_b64(key)


def body(op: str, caps: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "type": "meshagents.manifest.v1", "device_id": "home-wsl", "device_name": "home-wsl",
        "device_key": op, "wg_public_key": op, "mesh_address": "10.42.0.10", "matrix_user": "@dev:hub",
        "approvers": ["@op:hub"], "controllers": [CONTROLLER], "capabilities": caps, "serial": 1,
        "issued_at": now, "expires_at": now + 3600, "operator_key": op, **kw,
    }  # fmt: skip


def minimal() -> list[dict[str, Any]]:
    return opconfig.load_profile(opconfig.load(), "minimal")["capabilities"]


def test_beyond_the_profile_is_refused_unless_allowed(operator: str, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(body(operator, [*minimal(), {"name": "shell.exec.sh"}])))
    shown = call("capability_manifest_sign", manifest=path, profile="minimal", show=True)
    assert shown["ok"] is False and "shell.exec.sh: not in the profile" in shown["table"]
    with pytest.raises(FnError) as err:
        call("capability_manifest_sign", manifest=path, profile="minimal")
    assert err.value.code == "manifest_beyond_profile"
    signed = call("capability_manifest_sign", manifest=path, profile="minimal", allow=["shell.exec.sh"])
    assert manifest_mod.verify(signed, operator).capability("shell.exec.sh") is not None
    assert opconfig.last_signed("home-wsl") == signed  # the "previous" of the next one


def test_a_foreign_controller_is_refused_even_with_allow(operator: str, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(body(operator, minimal(), controllers=[CONTROLLER, OTHER])))
    with pytest.raises(FnError) as err:
        call("capability_manifest_sign", manifest=path, profile="minimal", allow=["controllers"])
    assert err.value.code == "manifest_config_mismatch"


def test_token_pins_the_profile_and_the_operator_remembers_it(operator: str, tmp_path: Path) -> None:
    out = call("enrollment_token_create", device_name="home-wsl", profile="minimal")
    tok = tokens.decode(str(out["token"]))
    assert tok.profile_sha256 == profile_sha256(opconfig.load_profile(opconfig.load(), "minimal"))
    assert tok.controllers == [CONTROLLER]
    assert opconfig.token_profile("home-wsl")["profile"] == "minimal"  # type: ignore[index]
    # the hub claims another profile; this machine's token record wins
    path = tmp_path / "m.json"
    path.write_text(json.dumps(body(operator, minimal())))
    shown = call("capability_manifest_sign", manifest=path, hub_profile="workstation", show=True)
    assert shown["profile"] == "minimal" and shown["profile_source"] == "your token" and shown["ok"]
    with pytest.raises(FnError) as err:
        call("enrollment_token_create", device_name="x", profile="no-such-profile")
    assert err.value.code == "profile_unknown"


def test_operator_config_is_written_once_and_the_operators_word_kept(operator: str, tmp_path: Path) -> None:
    path = tmp_path / "op" / "operator.toml"
    first = call("operator_config_write", controllers=[CONTROLLER], approvers=["@op:hub"], path=path)
    assert first["changed"] is True and (path.stat().st_mode & 0o777) == 0o600
    cfg = opconfig.load(path)
    assert (cfg.controllers, cfg.approvers) == ((CONTROLLER,), ("@op:hub",))
    again = call("operator_config_write", controllers=[OTHER], approvers=["@op:hub"], path=path)
    assert again == {"path": str(path), "changed": False, "differs": ["controllers"]}
    assert opconfig.load(path).controllers == (CONTROLLER,)
    path.write_text('controllers = "one"\n')
    with pytest.raises(FnError) as err:
        opconfig.load(path)
    assert err.value.code == "operator_config_invalid"
    path.write_text("surprise = 1\n")
    with pytest.raises(FnError):
        opconfig.load(path)
