"""Where one mesh interface keeps its things, and the lock that serialises changes to it.

<config_dir>/<iface>.conf                 wg-quick config (0600, committed)
<config_dir>/<iface>.nft                  nftables rules of a hub (committed)
<config_dir>/.meshagents/<iface>.sqlite   peers ledger (ignored by git)
<config_dir>/.meshagents/<iface>.lock     flock for read-modify-write
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from meshagents.errors import FnError
from meshagents.wg.backend import check_ifname
from meshagents.wg.config import WgQuickConfig, parse
from meshagents.wg.gitdir import ConfigRepo
from meshagents.wg.ledger import Ledger

DEFAULT_CONFIG_DIR = Path("/etc/wireguard")


@dataclass(frozen=True)
class WgPaths:
    interface: str
    config_dir: Path

    def __post_init__(self) -> None:
        check_ifname(self.interface)

    @property
    def conf_name(self) -> str:
        return f"{self.interface}.conf"

    @property
    def nft_name(self) -> str:
        return f"{self.interface}.nft"

    @property
    def conf(self) -> Path:
        return self.config_dir / self.conf_name

    @property
    def nft(self) -> Path:
        return self.config_dir / self.nft_name

    @property
    def private_dir(self) -> Path:
        return self.config_dir / ".meshagents"

    @property
    def ledger_path(self) -> Path:
        return self.private_dir / f"{self.interface}.sqlite"

    @property
    def lock_path(self) -> Path:
        return self.private_dir / f"{self.interface}.lock"

    def repo(self) -> ConfigRepo:
        return ConfigRepo(self.config_dir)

    def read_config(self) -> WgQuickConfig | None:
        if not self.conf.exists():
            return None
        return parse(self.conf.read_text(encoding="utf-8"))

    def require_config(self) -> WgQuickConfig:
        cfg = self.read_config()
        if cfg is None:
            raise FnError(
                "hub_not_configured",
                f"no {self.conf}: run wg_hub_setup first (or pass --config-dir/--interface)",
            )
        return cfg

    def ledger(self) -> Ledger:
        if not self.ledger_path.exists() and not self.conf.exists():
            raise FnError(
                "hub_not_configured", f"no hub {self.interface} in {self.config_dir}: run wg_hub_setup"
            )
        return Ledger(self.ledger_path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
