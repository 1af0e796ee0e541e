"""Hub config loading, shipped capability profiles, and the manifest a device gets (signed + verified)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.signing import SigningKey

from meshagents.apps.wg_hub import config
from meshagents.apps.wg_hub.issue import build_manifest
from meshagents.apps.wg_hub.profiles import list_profiles, load_profile
from meshagents.errors import FnError
from meshagents.trust import manifest as manifest_mod
from meshagents.trust.signing import public_b64

pytestmark = pytest.mark.unit


def test_config_from_toml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('interface = "wg9"\napprovers = ["@op:x"]\noperator_port = 8100\n[matrix]\n'
                    'homeserver_url = "http://10.42.0.1:8008"\nserver_name = "x"\n')  # fmt: skip
    cfg = config.load(path, {"public_port": 9443, "netns": None})
    assert cfg.interface == "wg9" and cfg.approvers == ("@op:x",) and cfg.public_port == 9443
    assert cfg.matrix is not None and cfg.matrix.server_name == "x"
    assert cfg.enroll_url() == "http://0.0.0.0:9443"


@pytest.mark.parametrize(
    "data",
    [{"nope": 1}, {"public_port": 8000, "operator_port": 8000}, {"approvers": "x"}, {"events_period_s": 0}],
)
def test_config_refusals(data: dict[str, object]) -> None:
    with pytest.raises(FnError) as exc:
        config.from_dict(data)
    assert exc.value.code == "config_invalid"


def test_shipped_profiles_load() -> None:
    names = list_profiles(config.PROFILES_DIR)
    assert {"default", "minimal", "workstation"} <= set(names)
    work = load_profile(config.PROFILES_DIR, "workstation")
    caps = {c["name"]: c for c in work["capabilities"]}
    assert "shell.exec.ls" in caps and caps["system.reboot"]["requires_approval"]
    assert not any(
        c["requires_approval"] for c in load_profile(config.PROFILES_DIR, "minimal")["capabilities"]
    )


def test_profile_refusals(tmp_path: Path) -> None:
    for name in ("missing", "../etc/passwd", "UPPER"):
        with pytest.raises(FnError) as exc:
            load_profile(config.PROFILES_DIR, name)
        assert exc.value.code == "profile_unknown"
    (tmp_path / "bad.json").write_text('{"capabilities": [{"name": "x", "executables": ["rel/path"]}]}')
    with pytest.raises(FnError) as exc:
        load_profile(tmp_path, "bad")
    assert exc.value.code == "profile_invalid"


def test_manifest_signed_by_operator_verifies_and_other_key_does_not() -> None:
    op, rogue, ctl = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    body = build_manifest(
        device_name="home-wsl",
        device_key=public_b64(SigningKey.generate()),
        wg_public_key=public_b64(SigningKey.generate()),
        mesh_address="10.42.0.10",
        profile=load_profile(config.PROFILES_DIR, "workstation"),
        controllers=[public_b64(ctl), public_b64(ctl)],
        approvers=["@op:hub"],
        server_name="hub",
        serial=1,
        now=1_000_000,
        default_ttl_s=3600,
        operator_key=public_b64(op),
    )
    assert body["controllers"] == [public_b64(ctl)] and body["matrix_user"] == "@dev-home-wsl:hub"
    signed = manifest_mod.sign(body, op).model_dump(mode="json")
    assert manifest_mod.verify(signed, public_b64(op), now=1_000_001).device_id == "home-wsl"
    forged = manifest_mod.sign(body, rogue).model_dump(mode="json")
    with pytest.raises(FnError) as exc:
        manifest_mod.verify(forged, public_b64(op), now=1_000_001)
    assert exc.value.code == "manifest_invalid_signature"
