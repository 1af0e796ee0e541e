"""device_audit_verify_chain: finds every chain in its one place, never says ok over nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from meshagents.errors import FnError, UsageError
from meshagents.functions.audit.device_audit_verify_chain import device_audit_verify_chain
from meshagents.trust.audit import AuditLog
from meshagents.trust.checkpoints import ManifestHistory, manifests_path
from meshagents.trust.models import Manifest
from meshagents.trust.paths import agent_config_path, audit_path
from meshagents.trust.signing import public_b64
from tests.testbed.trust_keys import Keys

pytestmark = pytest.mark.unit


def fill(path: Path, device: str, key: SigningKey | None = None, n: int = 3) -> None:
    with AuditLog(path, device_id=device) as log:
        for i in range(n):
            log.append_event("system.boot", "ok", detail=str(i))
        if key is not None:
            log.seal(key)


def test_all_with_no_chain_is_audit_missing(state_dir: Path) -> None:
    with pytest.raises(FnError) as err:
        device_audit_verify_chain(all=True)
    assert err.value.code == "audit_missing" and "nothing was verified" in err.value.message
    with pytest.raises(FnError) as err:
        device_audit_verify_chain(device="home-wsl")
    assert err.value.code == "audit_missing"
    assert err.value.details["missing"] == {"home-wsl": str(state_dir / "audit" / "home-wsl.sqlite")}
    with pytest.raises(UsageError):
        device_audit_verify_chain()
    with pytest.raises(UsageError):
        device_audit_verify_chain(all=True, hub_url="http://127.0.0.1:9")  # only with --against-hub


def test_finds_the_default_place_and_what_agent_configs_name(state_dir: Path, tmp_path: Path) -> None:
    fill(audit_path("home-wsl"), "home-wsl")
    elsewhere = tmp_path / "old-install" / "audit.sqlite"
    fill(elsewhere, "pc-aurgi")
    cfg = agent_config_path()
    cfg.parent.mkdir(parents=True)
    cfg.write_text(json.dumps({"device_id": "pc-aurgi", "audit_path": str(elsewhere)}))
    out = device_audit_verify_chain(all=True)
    assert sorted(out["devices"]) == ["home-wsl", "pc-aurgi"]
    assert out["devices"]["pc-aurgi"]["path"] == str(elsewhere)
    other = tmp_path / "c2" / "config.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"device_id": "cont-web", "audit_path": "audit.sqlite"}))
    fill(other.parent / "audit.sqlite", "cont-web")
    got = device_audit_verify_chain(device="cont-web", config=[other])
    assert got["devices"]["cont-web"]["ok"]


def test_a_key_no_manifest_names_is_refused(
    state_dir: Path, tmp_path: Path, keys: Keys, make_manifest: Callable[..., Manifest]
) -> None:
    manifest = make_manifest(device_id="home-wsl")
    mpath = tmp_path / "manifest.json"
    mpath.write_text(json.dumps(manifest.model_dump(mode="json")))
    cfg = agent_config_path()
    cfg.parent.mkdir(parents=True)
    cfg.write_text(
        json.dumps({"device_id": "home-wsl", "manifest_path": str(mpath), "operator_key": keys.op_pub})
    )
    fill(audit_path("home-wsl"), "home-wsl", keys.device)
    out = device_audit_verify_chain(device="home-wsl")
    assert out["devices"]["home-wsl"]["key_schedule"] == [keys.dev_pub]
    thief = SigningKey.generate()
    with AuditLog(audit_path("home-wsl")) as log:
        log.append_event("system.boot", "ok")
        log.seal(thief)
    with pytest.raises(FnError) as err:
        device_audit_verify_chain(device="home-wsl", device_key=public_b64(thief))  # pinning it does not help
    report = err.value.details["devices"]["home-wsl"]
    assert err.value.code == "audit_chain_broken"
    assert (report["problem"], report["first_bad_seq"]) == ("checkpoint_key_refused", 5)
    # a manifest the operator did not sign cannot name the thief's key
    forged = manifest.model_dump(mode="json") | {"device_key": public_b64(thief), "serial": 2}
    ManifestHistory(manifests_path(audit_path("home-wsl"))).path.write_text(json.dumps(forged) + "\n")
    with pytest.raises(FnError):
        device_audit_verify_chain(device="home-wsl")
