"""The data a Matrix client is given and hands out: its config and the events it
delivers (kept apart so the policy, the sync loop and the facade share them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nio

from meshagents.matrix import crosssign

State = Literal["stopped", "starting", "ok", "degraded"]


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs; one store directory per (user, device)."""

    homeserver: str
    user_id: str
    password: str
    store_dir: Path
    #: Users whose verified devices may command us (operators).
    operators: tuple[str, ...] = ()
    device_name: str = "meshagents"
    #: Operator master keys known out of band; others are pinned on first sight.
    pinned_master_keys: Mapping[str, str] = field(default_factory=dict)
    #: Blacklist devices their owner has not cross-signed (no room keys for them).
    exclude_insecure_devices: bool = True
    #: Accept invites from operators and from these users.
    accept_invites_from: tuple[str, ...] = ()
    #: Dispatch the history seen by the first sync of a brand-new store.
    handle_backlog: bool = False
    #: Where the cross-signing seeds live; default ``store_dir/cross_signing.json``. All
    #: devices (stores) of one account must share this file, or each resets the identity.
    cross_signing_path: Path | None = None
    #: Events per room a sync may carry: what queued up while we were away (older ones
    #: beyond this are skipped, never run late).
    timeline_limit: int = 100
    sync_timeout_ms: int = 30_000
    #: Typing notifications and read receipts in each sync (nio keeps them per room, e.g.
    #: ``rooms[id].typing_users``): for a client that shows them. The bot and the agents
    #: read neither, and every sync without them is cheaper for the homeserver.
    sync_ephemeral: bool = False
    #: Our own user's events (any of its devices) in each sync's timelines. They are never
    #: dispatched to a callback; nio applies the state events among them (members, power
    #: levels). False spares the homeserver and us a sync per send, for a client that
    #: changes no room state after joining (the device agent); see ``sync.sync_filter``.
    sync_own_events: bool = True
    backoff_initial: float = 0.25
    backoff_max: float = 30.0
    #: Operator ed25519 public keys (called on each use, so rotations apply) whose signed
    #: ``org.meshagents.matrix_identity`` statements confirm a new master key of an
    #: operator (meshagents.matrix.identity). None: no confirmation possible.
    identity_keys: Callable[[], Sequence[str]] | None = None
    #: When the server's master key is not the one of our seeds (the identity was reset
    #: elsewhere, e.g. in Element): called (in a thread) for the account's current seeds,
    #: which are then saved over ``cross_signing_path``. None: replace the server's
    #: identity with ours (bot and agents own their accounts). Raising refuses to start.
    adopt_identity: Callable[[], crosssign.CrossSigningSeeds] | None = None
    #: The key-backup private key (``megolm_backup.json``, meshagents.matrix.recovery):
    #: upload the room keys we hold to the server's key backup, so a session verified
    #: later (Element) reads what this client received. None: no upload.
    key_backup_path: Path | None = None

    @property
    def seeds_path(self) -> Path:
        """Where the cross-signing seeds are kept."""
        return self.cross_signing_path or self.store_dir / "cross_signing.json"


@dataclass(frozen=True)
class Incoming:
    """One event handed to a callback."""

    room_id: str
    event_id: str
    sender: str
    type: str
    content: dict[str, Any]
    decrypted: bool
    verified: bool  # the trust policy's verdict, see meshagents.matrix.client.policy
    sender_device: str | None
    event: nio.Event
    #: Why ``verified`` is what it is: "ok" or the trust policy's reason, e.g.
    #: "device_not_cross_signed" (an unverified session), "master_key_changed" (an
    #: identity reset not confirmed by the operator key), "not_an_operator".
    trust: str = "ok"

    @property
    def body(self) -> str | None:
        body = self.content.get("body")
        return body if isinstance(body, str) else None

    @property
    def relates_to(self) -> str | None:
        rel = self.content.get("m.relates_to")
        return rel.get("event_id") if isinstance(rel, dict) else None

    @property
    def reaction_key(self) -> str | None:
        rel = self.content.get("m.relates_to")
        return rel.get("key") if isinstance(rel, dict) else None


Callback = Callable[[Incoming], Awaitable[None]]
