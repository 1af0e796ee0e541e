"""The CLI shapes scripts depend on, through the real ./fn launcher (subprocesses, so not a unit test)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meshagents.state import project_root

pytestmark = pytest.mark.integration


def fn(state: Path, *args: str) -> tuple[int, Any, str]:
    env = dict(os.environ, FN_STATE_DIR=str(state), FN_KEYSTORE="file")
    res = subprocess.run(
        [str(project_root() / "fn"), "run", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=project_root(),
        timeout=120,
    )
    out = json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else None
    err = json.loads(res.stderr.strip().splitlines()[-1])["error"] if res.returncode else ""
    return res.returncode, out, err


def test_contract(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rc, out, _ = fn(state, "operator_key_init")
    assert rc == 0 and out["created"] is True
    rc, out, _ = fn(state, "operator_key_init")
    assert rc == 0 and out["created"] is False

    rc, out, _ = fn(state, "enrollment_token_create", "--device-name", "home-wsl", "--ttl-s", "600")
    assert rc == 0 and out["token"].startswith("mat1.")
    token = out["token"]
    assert fn(state, "enrollment_token_verify", "--token", token)[0] == 0
    assert fn(state, "enrollment_token_verify", "--token", token)[2] == "token_used"
    # change one character in the middle of the signature (never a no-op, unlike a fixed suffix)
    i = len(token) - 10
    tampered = token[:i] + ("B" if token[i] != "B" else "C") + token[i + 1 :]
    assert fn(state, "enrollment_token_verify", "--token", tampered)[2] == "token_invalid"

    example = project_root() / "docs" / "examples" / "manifest.json"
    rc, signed, _ = fn(state, "capability_manifest_sign", "--manifest", str(example))
    assert rc == 0
    path = tmp_path / "signed.json"
    path.write_text(json.dumps(signed, indent=2))
    rc, out, _ = fn(state, "capability_manifest_verify", "--manifest", str(path))
    assert rc == 0 and out["serial"] == 1
    signed["capabilities"][0]["timeout_s"] += 1
    path.write_text(json.dumps(signed, indent=2))
    assert fn(state, "capability_manifest_verify", "--manifest", str(path))[2] == "manifest_invalid_signature"

    rc, out, _ = fn(state, "device_audit_append", "--device", "home-wsl", "--kind", "event", "--status", "ok")
    assert rc == 0 and out["entry"]["seq"] == 1
    rc, out, _ = fn(state, "device_audit_verify_chain", "--device", "home-wsl")
    assert rc == 0 and out["devices"]["home-wsl"]["ok"]
    rc, out, _ = fn(state, "device_audit_verify_chain", "--all")
    assert rc == 0 and list(out["devices"]) == ["home-wsl"]


def test_envelope_and_rotation_flow(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert fn(state, "operator_key_init")[0] == 0
    rc, ctl, _ = fn(state, "controller_key_init")
    assert rc == 0
    example = json.loads((project_root() / "docs" / "examples" / "manifest.json").read_text())
    example["controllers"] = [ctl["public_key"]]
    example["capabilities"][0]["path_prefixes"] = [str(tmp_path)]
    unsigned = tmp_path / "m.json"
    unsigned.write_text(json.dumps(example))
    rc, signed, _ = fn(state, "capability_manifest_sign", "--manifest", str(unsigned))
    manifest = tmp_path / "signed.json"
    manifest.write_text(json.dumps(signed))

    def envelope(argv: list[str]) -> Path:
        rc, env, _ = fn(
            state, "envelope_sign", "--device-id", "dev-0001", "--capability", "shell.exec.ls",
            "--args", json.dumps({"argv": argv}),
        )  # fmt: skip
        assert rc == 0
        path = tmp_path / f"env-{env['nonce']}.json"
        path.write_text(json.dumps(env))
        return path

    ok = envelope(["ls", "-l", str(tmp_path)])
    rc, out, _ = fn(state, "envelope_verify", "--envelope", str(ok), "--manifest", str(manifest))
    assert rc == 0 and out["argv"][0] in ("/bin/ls", "/usr/bin/ls")
    assert (
        fn(state, "envelope_verify", "--envelope", str(ok), "--manifest", str(manifest))[2]
        == "rejected_nonce"
    )
    bad = envelope(["ls", "/etc"])
    assert (
        fn(state, "envelope_verify", "--envelope", str(bad), "--manifest", str(manifest))[2]
        == "rejected_args"
    )

    rc, rot, _ = fn(state, "operator_key_rotate", "--reason", "test", "--manifests", str(manifest))
    assert rc == 0 and rot["resigned"][0]["serial"] == 2
    rc, out, _ = fn(state, "capability_manifest_verify", "--manifest", str(manifest))
    assert rc == 0 and out["serial"] == 2 and out["operator_key"] == rot["new_key"]
    manifest.write_text(json.dumps(signed))  # the old manifest, old key, serial 1
    assert (
        fn(state, "capability_manifest_verify", "--manifest", str(manifest))[2]
        == "manifest_invalid_signature"
    )
