"""The WireGuard layer: hub, peers, client configs, status — on two backends.

backend.py     the ``WgBackend`` interface and ``open_backend`` (auto choice)
userspace.py   wireguard-go / boringtun through the UAPI socket (``uapi.py``)
kernel.py      the kernel module through pyroute2's WireGuard generic netlink
links.py       links, addresses, routes through pyroute2 (both backends)
netns.py       running a command inside a named network namespace
config.py      wg-quick config render / parse (pure)
ledger.py      the peers ledger (SQLite): addresses and device ids never reused
allocation.py  next mesh address (pure)
firewall.py    nftables rules (render pure, apply through ``nft -f``)
gitdir.py      the git-backed config directory, drift detection
hub.py         the operations the ``meshagents/functions/wg/*`` shells call
"""
