"""What every capability module shares: the run context and the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def cap_text(text: str, cap: int) -> tuple[str, bool]:
    """``text`` cut to ``cap`` UTF-8 bytes (on a character boundary) with a note when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= cap:
        return text, False
    kept = raw[:cap].decode("utf-8", "ignore")
    return kept + TRUNCATION_NOTE.format(kept=len(kept.encode("utf-8")), total=len(raw)), True


def decode(output: bytes) -> str:
    return output.decode("utf-8", "replace")
