"""What every capability module shares: the run context, the result, the facts an
offer is made from, and :class:`Handler`, the record each module declares.

    HANDLER = Handler(spec, run, offer)     # in each capability module, e.g. fs_read.py
    run(decision, args, ctx) -> CapResult    # blocking; the agent calls it in a worker thread
    offer(facts) -> [manifest capability entries]   # what the device offers at enrollment

``spec`` is the capability's pure spec (``meshagents.capabilities``): its name, its
command and argument parser, shared with the bot. The agent's dispatch table and its
offer (``meshagents/apps/device_agent/offer.py``) are built from the handlers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from meshagents.capabilities.spec import CapabilitySpec
from meshagents.trust.manifest import Decision, agent_state_conflicts
from meshagents.trust.models import Capability, Manifest

#: The offer levels of ``fn app device_agent --offer LEVEL`` (not the hub's capability
#: profiles, which an operator's token names).
OFFER_LEVELS = ("minimal", "default", "docker")
HOME_FOLDERS = ("Documents", "Downloads", "Desktop", "Pictures", "Public")

TRUNCATION_NOTE = "\n[output truncated: {kept} of {total} bytes shown]"


@dataclass(frozen=True)
class Context:
    """What a capability may use besides its decision: settings, never the network stack."""

    sandbox: bool = True
    docker_host: str | None = None
    snapshots_dir: Path = Path("/tmp")
    caller: str = "device_agent"
    #: the agent's own state, config, audit store and keys: masked inside every sandbox
    hidden: tuple[str, ...] = ()
    #: One request's live-output and cancel hooks, set by the agent's shell (live.py).
    on_output: Callable[[bytes], None] | None = field(default=None, compare=False)
    on_start: Callable[[Callable[[], None]], None] | None = field(default=None, compare=False)
    cancel: Callable[[str], CapResult] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class CapResult:
    """``status``: ok | error | timeout. ``output`` is text for the room (already capped)."""

    status: str
    output: str
    exit_code: int | None = None
    truncated: bool = False
    detail: str = ""
    data: dict[str, Any] | None = None


def as_dict(obj: Any) -> dict[str, Any]:
    """A catalog function's result (a dict or a dataclass) as a dict."""
    if isinstance(obj, dict):
        return obj
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return dict(obj)


def _reaches(prefix: str, protected: tuple[str, ...]) -> bool:
    probe = Manifest.model_construct(capabilities=[Capability(name="probe", path_prefixes=[prefix])])
    return bool(agent_state_conflicts(probe, protected))


def safe_prefixes(prefixes: list[str], protected: tuple[str, ...]) -> list[str]:
    """``prefixes`` minus any that reach the agent's state; a ``$HOME`` that does is
    replaced by its usual folders that exist."""
    out: list[str] = []
    for p in prefixes:
        if not _reaches(p, protected):
            out.append(p)
            continue
        for sub in HOME_FOLDERS:
            child = os.path.join(p, sub)
            if os.path.isdir(child) and not _reaches(child, protected) and child not in out:
                out.append(child)
    return out


@dataclass(frozen=True)
class OfferFacts:
    """What the device's offer is made from: the level asked for, the operator's home,
    the agent's own state (never offered), whether a camera is there (None: look)."""

    level: str
    home: str
    protected: tuple[str, ...]
    camera_available: bool | None = None
    scratch: str = "/tmp"

    @property
    def minimal(self) -> bool:
        return self.level == "minimal"

    @functools.cached_property
    def listed(self) -> list[str]:
        """Where fs.list (and ls) may look: the home and the scratch directory."""
        return safe_prefixes([self.home, self.scratch], self.protected)

    @functools.cached_property
    def readable(self) -> list[str]:
        return safe_prefixes([self.home], self.protected)

    @functools.cached_property
    def writable(self) -> list[str]:
        return safe_prefixes([self.scratch], self.protected)

    def under(self, name: str, prefixes: list[str], description: str, **terms: Any) -> list[dict[str, Any]]:
        """The one-entry offer of a capability confined to ``prefixes`` (``description`` names them
        at ``{}``): nothing at the minimal level or when no prefix is left to offer."""
        if self.minimal or not prefixes:
            return []
        return [{"name": name, "description": description.format(", ".join(prefixes)),
                 "path_prefixes": prefixes, **terms}]


Run = Callable[[Decision, dict[str, Any], Context], CapResult]
Offer = Callable[[OfferFacts], list[dict[str, Any]]]


def _offers_nothing(facts: OfferFacts) -> list[dict[str, Any]]:
    return []


@dataclass(frozen=True)
class Handler:
    """One capability on this agent: its spec, how it runs, what it offers.

    ``matches`` decides which manifest capabilities it serves (default: the spec's own
    name, and ``<name>.<program>`` for a family); a ``fallback`` handler is asked only
    after every other one. ``cancellable``: it runs a process ``!cancel`` can stop."""

    spec: CapabilitySpec
    run: Run
    offer: Offer = _offers_nothing
    matches: Callable[[Capability], bool] | None = None
    fallback: bool = False
    cancellable: bool = False

    def serves(self, cap: Capability) -> bool:
        return self.matches(cap) if self.matches is not None else self.spec.covers(cap.name)


def cap_text(text: str, cap: int) -> tuple[str, bool]:
    """``text`` cut to ``cap`` UTF-8 bytes (on a character boundary) with a note when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= cap:
        return text, False
    kept = raw[:cap].decode("utf-8", "ignore")
    return kept + TRUNCATION_NOTE.format(kept=len(kept.encode("utf-8")), total=len(raw)), True


def decode(output: bytes) -> str:
    return output.decode("utf-8", "replace")
