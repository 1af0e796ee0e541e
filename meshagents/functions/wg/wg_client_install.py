"""wg_client_install: install a client config on this device and bring the mesh interface up."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meshagents.errors import FnError
from meshagents.runtime.catalog import function


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
    """Write the config 0600, bring the interface up, and add a systemd unit where systemd runs.

    Args:
        config_file: the client config to install: a wg-quick file from wg_client_config or enrollment_submit
            (client.conf), with a private key or the '<device private key>' placeholder.
        interface: the mesh interface to create on this device (1-15 characters, no '/', ':' or spaces); the
            config is written to <config_dir>/<interface>.conf.
        config_dir: directory the config is written to (the file 0600, the directory created 0700).
        netns: network namespace name under /run/netns to bring the interface up in (tests); default: the root
            namespace. With a namespace neither wg-quick nor systemd is used.
        private_key_file: file with this device's base64 WireGuard private key; needed when the config has the
            placeholder instead of a key, ignored otherwise.
        backend: auto (the kernel's WireGuard if it has it, else userspace; MESHAGENTS_WG_BACKEND overrides),
            kernel, or userspace (wireguard-go).
        systemd: install and enable a systemd unit so the interface comes up at boot (only where systemd runs
            and no netns is given).
    """
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
