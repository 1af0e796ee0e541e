"""Local signed checkpoints of the agent's audit chain: when to sign, with which key.

    sealer = Sealer(config, audit, manifest_loader, key_loader)
    sealer.seal(force=False) -> dict | None   # a record in <chain>.checkpoints.jsonl (None: nothing new)
    sealer.maybe() -> dict | None             # seal when ``checkpoint_every`` entries are unsealed
    await sealer.run()                        # forever: every ``checkpoint_interval_s``, if unsealed

The agent calls ``maybe()`` after each request and ``seal()`` at a clean stop; ``run``
covers a quiet device. Before signing, the manifest in force is appended to the
manifest history beside the chain (what a verifier builds the key schedule from), and
the agent signs only with the device key that manifest names: a key the operator did
not name would produce checkpoints every verifier refuses (``checkpoint_key_refused``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from nacl.signing import SigningKey

from meshagents.apps.device_agent.config import AgentConfig
from meshagents.errors import FnError
from meshagents.trust.audit import AuditLog
from meshagents.trust.checkpoints import ManifestHistory, manifests_path
from meshagents.trust.models import Manifest
from meshagents.trust.signing import public_b64

log = logging.getLogger("meshagents.device_agent.sealing")


class Sealer:
    def __init__(
        self,
        config: AgentConfig,
        audit: AuditLog,
        manifest_loader: Callable[[], Manifest],
        key_loader: Callable[[], SigningKey],
    ) -> None:
        self.config = config
        self.audit = audit
        self._manifest = manifest_loader
        self._key_loader = key_loader
        self._key: SigningKey | None = None
        self.history = ManifestHistory(manifests_path(config.audit_path))
        self.sealed = 0

    def _signing_key(self, named: str | None) -> SigningKey | None:
        if self._key is None or (named is not None and public_b64(self._key) != named):
            self._key = self._key_loader()  # a re-issued manifest may name a new key: reload once
        if named is not None and public_b64(self._key) != named:
            log.error("the device key is not the one the manifest names; no checkpoint signed")
            return None
        return self._key

    def seal(self, *, force: bool = False) -> dict[str, Any] | None:
        try:
            manifest: Manifest | None = self._manifest()
        except FnError as exc:
            log.warning("manifest not usable (%s); checkpoint signed without recording it", exc.code)
            manifest = None
        if manifest is not None:
            self.history.record(manifest)
        key = self._signing_key(manifest.device_key if manifest is not None else None)
        if key is None:
            return None
        record = self.audit.seal(key, force=force)
        if record is not None:
            self.sealed += 1
            log.info("audit checkpoint #%d at seq %d", record["index"], record["seq"])
        return record

    def maybe(self) -> dict[str, Any] | None:
        if self.audit.unsealed() >= self.config.checkpoint_every:
            return self.seal()
        return None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.config.checkpoint_interval_s)
            try:
                self.seal()
            except (FnError, OSError) as exc:
                log.warning("periodic audit checkpoint failed: %s", exc)
