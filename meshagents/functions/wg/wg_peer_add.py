"""wg_peer_add: add a device to the hub with the next never-used mesh address."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.runtime.catalog import function


@function(id="wg_peer_add", group="wg", requires=["root", "wireguard"])
def wg_peer_add(
    public_key: str,
    name: str | None = None,
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
    preshared: bool = False,
    preshared_key_file: Path | None = None,
    persistent_keepalive: int | None = None,
) -> dict[str, Any]:
    """Add a peer live, in the config and in the ledger in one step; the same key again is a no-op.

    ``--preshared`` takes the device's preshared key from the key store
    (``wg/preshared/<name>``), making and storing one the first time.

    Args:
        public_key: the device's WireGuard public key, base64 of 32 bytes (as `wg pubkey` prints it).
        name: device name: 1-63 of A-Z a-z 0-9 _ . -, starting with a letter or digit; never reused for
            another key. Default: peer-<the key's first 10 letters and digits, lowercased>.
        interface: see args.toml [hub]
        config_dir: see args.toml [hub]
        netns: see args.toml [hub]
        preshared: use a preshared key from the key store (wg/preshared/<name>), made and stored the first
            time; ignored when preshared_key_file is given.
        preshared_key_file: file with a base64 32-byte preshared key to use for this peer.
        persistent_keepalive: keepalive interval in seconds the hub sends to this peer, 0-65535 (0 turns
            it off); default: keep the peer's current setting, none for a new peer.
    """
    if persistent_keepalive is not None and not 0 <= persistent_keepalive <= 65535:
        # WireGuard's field is 16 bits; a negative value would reach the UAPI as garbage.
        raise FnError("bad_keepalive", f"persistent_keepalive {persistent_keepalive}: use 0-65535 seconds")
    from meshagents.runtime.api import call
    from meshagents.wg import peers
    from meshagents.wg.client import read_key_file

    psk: str | None = None
    if preshared_key_file is not None:
        psk = read_key_file(preshared_key_file, "preshared key")
    elif preshared:
        # the key store keeps it (wg/preshared/<device>): made once, reused on a re-add
        from meshagents.trust.keystore import open_keystore, wg_preshared_name

        store = open_keystore()
        ref = wg_preshared_name(name or peers.default_name(public_key.strip()))
        raw = store.get(ref)
        if raw is None:
            psk = call("wg_keygen", caller="wg_peer_add", preshared=True)["preshared_key"]
            store.put(ref, base64.b64decode(psk))
        else:
            psk = base64.b64encode(raw).decode()
    return peers.add(
        public_key=public_key,
        name=name,
        interface=interface,
        config_dir=config_dir,
        netns=netns,
        preshared_key=psk,
        persistent_keepalive=persistent_keepalive,
    )
