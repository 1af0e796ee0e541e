"""wg_client_install: install a client config on this device and bring the mesh interface up."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meshagents.catalog import function
from meshagents.errors import FnError


@function(id="wg_client_install", group="wg", requires=["root", "wireguard"])
def wg_client_install(
    config_file: Path,
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
    private_key_file: Path | None = None,
    backend: Literal["auto", "kernel", "userspace"] = "auto",
    systemd: bool = True,
) -> dict[str, Any]:
    """Write the config 0600, bring the interface up, and add a systemd unit where systemd runs."""
    from meshagents.wg.client import install

    try:
        text = config_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise FnError("config_unreadable", f"cannot read {config_file}: {exc.strerror}") from exc
    return install(
        config_text=text,
        interface=interface,
        config_dir=config_dir,
        netns=netns,
        private_key_file=private_key_file,
        backend=backend,
        systemd=systemd,
    )
