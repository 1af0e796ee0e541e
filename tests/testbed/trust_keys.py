"""Shared helpers for the trust unit tests: throwaway keys and a manifest factory."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from meshagents.trust import manifest as manifest_mod
from meshagents.trust.models import Manifest
from meshagents.trust.signing import public_b64


class Keys:
    def __init__(self) -> None:
        self.operator = SigningKey.generate()
        self.controller = SigningKey.generate()
        self.device = SigningKey.generate()
        self.op_pub = public_b64(self.operator)
        self.ctl_pub = public_b64(self.controller)
        self.dev_pub = public_b64(self.device)


@pytest.fixture
def keys() -> Keys:
    return Keys()


def manifest_body(keys: Keys, prefix: Path | None = None, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "type": "meshagents.manifest.v1",
        "device_id": "dev-0001",
        "device_name": "home-wsl",
        "device_key": keys.dev_pub,
        "wg_public_key": keys.dev_pub,
        "mesh_address": "10.42.0.10",
        "matrix_user": "@dev-home-wsl:localhost",
        "approvers": ["@operator:localhost"],
        "controllers": [keys.ctl_pub],
        "capabilities": [
            {
                "name": "shell.exec.ls",
                "description": "café list",
                "executables": ["/bin/ls", "/usr/bin/ls"],
                "path_prefixes": [str(prefix or "/tmp")],
                "flags": ["-l", "-a", "-la"],
            },
            {"name": "system.reboot", "executables": ["/bin/true"], "max_args": 0, "requires_approval": True},
            {
                "name": "docker.container.logs",
                "values": {"container": ["web", "db"]},
                "limits": {"tail": 100},
            },
        ],
        "serial": 1,
        "issued_at": now - 10,
        "expires_at": now + 86400,
        "operator_key": keys.op_pub,
    }
    body.update(overrides)
    return body


@pytest.fixture
def make_manifest(keys: Keys) -> Callable[..., Manifest]:
    def make(prefix: Path | None = None, **overrides: Any) -> Manifest:
        return manifest_mod.sign(manifest_body(keys, prefix, **overrides), keys.operator)

    return make
