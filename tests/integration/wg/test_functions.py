"""wg_install's plan on this machine and wg_client_config's outputs (QR PNG and terminal)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from meshagents.errors import FnError
from tests.testbed.host import ROOT
from tests.testbed.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.root]


def test_install_dry_run_plans_nothing_here() -> None:
    """wireguard-tools and wireguard-go are installed here and the kernel has no module."""
    from tests.testbed.host import require_binary

    require_binary("dpkg-query", "wg", "wireguard-go")
    out = Mesh.call("wg_install", dry_run=True, hub=True)
    assert out["manager"] == "apt" and out["dry_run"] is True
    assert "wireguard-go" in out["packages"], "no kernel WireGuard here: the userspace one is needed"
    assert out["missing"] == [] and out["commands"] == [] and out["changed"] is False
    again = Mesh.call("wg_install", hub=True)  # idempotent: nothing to install, nothing run
    assert again["changed"] is False


def test_client_config_qr_and_private_key(mesh: Mesh, tmp_path: Path) -> None:
    d1 = mesh.devices[0]
    png = tmp_path / "d1.png"
    out = Mesh.call(
        "wg_client_config",
        peer=d1.name,
        interface=mesh.hub.interface,
        config_dir=mesh.hub.config_dir,
        endpoint="hub.example",
        private_key_file=d1.private_key_file,
        qr_png=png,
        qr_terminal=True,
    )
    assert out["has_private_key"] is True
    assert d1.private_key_file.read_text().strip() in out["config"]
    assert "Endpoint = hub.example:51820" in out["config"]
    assert "PersistentKeepalive = 25" in out["config"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_mode & 0o777 == 0o600
    assert out["qr_terminal"].count("\n") > 20
    other = mesh.devices[1]
    with pytest.raises(FnError) as exc:  # someone else's key cannot be put into d1's config
        Mesh.call(
            "wg_client_config",
            peer=d1.name,
            interface=mesh.hub.interface,
            config_dir=mesh.hub.config_dir,
            endpoint="hub.example",
            private_key_file=other.private_key_file,
        )
    assert exc.value.code == "key_mismatch"
    installed = d1.config_dir / f"{d1.interface}.conf"
    assert installed.stat().st_mode & 0o777 == 0o600


def test_cli_error_codes(mesh: Mesh) -> None:
    root = ROOT
    proc = subprocess.run(
        [str(root / "fn"), "run", "wg_peer_add", "--public-key", "not-a-key",
         "--interface", mesh.hub.interface, "--config-dir", str(mesh.hub.config_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert json.loads(proc.stderr.strip().splitlines()[-1])["error"] == "invalid_key"
