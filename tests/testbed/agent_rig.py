"""A throwaway device for the agent's tests: keys, a signed manifest, a config file,
and a tiny "controller" that signs envelopes with the trust core (standing in for
the bot). Used by the unit tests and, with a real Synapse, by the integration tests.

    rig = make_rig(tmp_path, capabilities=[...], **config_overrides)
    rig.content("shell.exec.ls", {"argv": ["ls", str(rig.files)]}) -> event content
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from meshagents.apps.device_agent.config import AgentConfig, load
from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.trust import envelope as trust_envelope
from meshagents.trust import manifest as trust_manifest
from meshagents.trust.keystore import DEVICE_KEY, FileKeyStore
from meshagents.trust.signing import public_b64


def _exe(name: str) -> list[str]:
    found = [p for p in (f"/bin/{name}", f"/usr/bin/{name}") if Path(p).exists()]
    which = shutil.which(name)
    if which and which not in found:
        found.append(which)
    return found


def default_capabilities(files: Path, writable: Path) -> list[dict[str, Any]]:
    return [
        {"name": "shell.exec.ls", "executables": _exe("ls"), "path_prefixes": [str(files)], "timeout_s": 10},
        {"name": "shell.exec.echo", "executables": _exe("echo"), "timeout_s": 10},
        {"name": "shell.exec.sleep", "executables": _exe("sleep"), "timeout_s": 60},
        {
            "name": "shell.exec.sh",
            "executables": _exe("sh"),
            "cwd": str(writable),
            "flags": ["-c"],
            "limits": {"write": 1},
            "timeout_s": 20,
            "output_cap_bytes": 4096,
        },
        {"name": "shell.exec.python3", "executables": _exe("python3"), "flags": ["-c"], "timeout_s": 20},
        {
            "name": "shell.exec.head",
            "executables": _exe("head"),
            "flags": ["-c"],
            "timeout_s": 20,
            "output_cap_bytes": 65536,
        },
        {"name": "fs.list", "path_prefixes": [str(files)]},
        {
            "name": "fs.read",
            "path_prefixes": [str(files)],
            "limits": {"max_bytes": 1 << 20},
            "output_cap_bytes": 4096,
        },
        {
            "name": "fs.write",
            "path_prefixes": [str(writable)],
            "texts": {"content": 1 << 20},
            "requires_approval": True,
        },
        {"name": "system.info"},
        {"name": "sensors"},
        {"name": "system.reboot", "executables": _exe("true"), "max_args": 0, "requires_approval": True},
    ]


@dataclass
class Rig:
    root: Path
    files: Path
    writable: Path
    operator: SigningKey
    controller: SigningKey
    device: SigningKey
    device_id: str
    config_path: Path
    manifest_path: Path
    approvers: list[str]

    @property
    def config(self) -> AgentConfig:
        return load(self.config_path)

    def envelope(self, capability: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
        key = kw.pop("key", self.controller)
        kw.setdefault("device_id", self.device_id)
        env = trust_envelope.sign(key, capability=capability, args=args, **kw)
        return env.model_dump(mode="json")

    def content(
        self,
        capability: str,
        args: dict[str, Any],
        *,
        reply_to: str | None = None,
        request_event: str | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        return {
            "envelope": self.envelope(capability, args, **kw),
            "reply_to": reply_to,
            "approval_request_event": request_event,
        }

    def resign(self, **changes: Any) -> None:
        data = json.loads(self.manifest_path.read_text())
        data.update(changes)
        signed = trust_manifest.sign(data, self.operator)
        self.manifest_path.write_text(json.dumps(signed.model_dump(mode="json")))


def make_rig(
    root: Path,
    *,
    capabilities: list[dict[str, Any]] | None = None,
    approvers: list[str] | None = None,
    device_id: str | None = None,
    **config: Any,
) -> Rig:
    root.mkdir(parents=True, exist_ok=True)
    files = root / "files"
    writable = root / "writable"
    files.mkdir(exist_ok=True)
    writable.mkdir(exist_ok=True)
    (files / "hello.txt").write_text("hello from the device\n")
    operator, controller, device = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    device_id = device_id or f"dev-{secrets.token_hex(3)}"
    approvers = approvers or ["@operator:localhost"]
    now = int(time.time())
    manifest = {
        "device_id": device_id,
        "device_name": device_id,
        "device_key": public_b64(device),
        "wg_public_key": public_b64(SigningKey.generate()),
        "mesh_address": "10.42.0.10",
        "matrix_user": config.get("matrix_user", "@dev:localhost"),
        "approvers": approvers,
        "controllers": [public_b64(controller)],
        "bot_users": list(config.get("bot_users", ["@bot:localhost"])),
        "capabilities": capabilities if capabilities is not None else default_capabilities(files, writable),
        "serial": 1,
        "issued_at": now - 60,
        "expires_at": now + 86400,
    }
    signed = trust_manifest.sign(manifest, operator)
    state = root / "state"
    state.mkdir(exist_ok=True)
    manifest_path = state / "manifest.json"
    manifest_path.write_text(json.dumps(signed.model_dump(mode="json")))
    FileKeyStore(state / "keys").put(DEVICE_KEY, bytes(device))
    cfg: dict[str, Any] = {
        "device_id": device_id,
        "device_name": device_id,
        "manifest_path": "manifest.json",
        "operator_key": public_b64(operator),
        "homeserver": "http://127.0.0.1:9",
        "matrix_user": "@dev:localhost",
        "matrix_password": "x",
        "device_room": "#dev:localhost",
        "approvals_room": "#operator-approvals:localhost",
        "bot_users": ["@bot:localhost"],
        "keys_dir": "keys",
        "health_interval_s": 1,
        # beside the config, not <FN_STATE_DIR>/audit/: in-process test agents share one environment
        "audit_path": "audit.sqlite",
    }
    cfg.update(config)
    config_path = state / "config.json"
    config_path.write_text(json.dumps(cfg))
    config_path.chmod(0o600)
    return Rig(
        root, files, writable, operator, controller, device, device_id, config_path, manifest_path, approvers
    )


# The unsandboxed rig and its pipeline, for the agent's unit tests (re-exported by
# tests/unit/apps/device_agent/conftest.py).
@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path, sandbox=False)


@pytest.fixture
def pipe(rig: Rig) -> Iterator[Pipeline]:
    p = Pipeline(rig.config)
    yield p
    p.close()
