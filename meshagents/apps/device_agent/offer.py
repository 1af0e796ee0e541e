"""What this device can offer: the capability entries for a manifest, by offer level.

    capabilities_for(level="default", *, home=None, camera_available=None,
                     protected=None) -> list[dict]
    OFFER_LEVELS = ("minimal", "default", "docker")
    agent_state_paths() -> tuple[str, ...]    # where this agent keeps its state by default

An offer level is the device's own choice of what to propose; it is not a *capability
profile*, the hub's operator-written JSON file (``meshagents/apps/wg_hub/profiles/``)
that an enrollment token names and that bounds what the hub may sign. The entries come
from each capability module's ``offer(facts)`` (``capabilities/<module>.py``), in the
order of ``capabilities.HANDLERS``.

Run on the device at enrollment (``fn app device_agent --offer default``): the output
is plain data for the operator to sign into the device's manifest, nothing is granted
until then. Facts decide what is offered: ``camera.snapshot`` only where a V4L2
camera and ffmpeg exist (so a device without one never has it, and the agent refuses
it as ``rejected_capability``); ``shell.exec.<program>`` only for programs found in
the fixed search path; docker entries only at the ``docker`` level. ``fs.write``
always carries ``requires_approval: true`` — the operator may lift it when signing.

Honest offers: every option a program may take is listed (with its arity), and a
program that can change the system is offered only with constraints that keep it
read-only, or with ``requires_approval``:

- ``systemctl``: first argument one of :data:`SYSTEMCTL_READ` (``status``,
  ``is-active``, ``list-units``, ...), never ``start``/``stop``/``poweroff``;
- ``journalctl``: reading options only; ``--rotate``, ``--vacuum-*``, ``--flush``,
  ``--sync``, ``--relinquish-var``, ``--setup-keys``, ``--directory``/``--file``
  (reading any file) are not declared, so they are refused;
- ``ip``: ``requires_approval`` — a second word (``ip route flush``) changes the
  system; under the hardened sandbox it has no ``CAP_NET_ADMIN`` anyway;
- ``ps`` is no longer offered: in the sandbox's PID namespace it sees only itself.

No path of the offer reaches the agent's own state dir, config or audit store
(:func:`agent_state_paths`): a non-root agent's ``$HOME`` holds
``~/.local/state/meshagents``, so ``fs.read`` then offers the usual folders of
``$HOME`` (Documents, Downloads, ...) instead of ``$HOME`` itself. The agent refuses
such a manifest at load anyway (``manifest_covers_agent_state``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from meshagents.apps.device_agent.capabilities import HANDLERS
from meshagents.apps.device_agent.capabilities.base import HOME_FOLDERS as HOME_FOLDERS
from meshagents.apps.device_agent.capabilities.base import OFFER_LEVELS, OfferFacts
from meshagents.apps.device_agent.capabilities.shell_exec import JOURNALCTL_FLAGS as JOURNALCTL_FLAGS
from meshagents.apps.device_agent.capabilities.shell_exec import PROGRAMS as PROGRAMS
from meshagents.apps.device_agent.capabilities.shell_exec import SYSTEMCTL_READ as SYSTEMCTL_READ
from meshagents.errors import FnError

__all__ = ["OFFER_LEVELS", "PROGRAMS", "agent_state_paths", "capabilities_for"]


def agent_state_paths() -> tuple[str, ...]:
    """This agent's default state directory (the one enrollment writes), without creating it."""
    env = os.environ.get("FN_STATE_DIR")
    if env:
        base = Path(env)
    elif os.geteuid() == 0:
        base = Path("/var/lib/meshagents")
    else:
        base = Path.home() / ".local" / "state" / "meshagents"
    return (os.path.normpath(os.path.abspath(str(base))),)


def capabilities_for(
    level: str = "default",
    *,
    home: str | None = None,
    camera_available: bool | None = None,
    protected: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    if level not in OFFER_LEVELS:
        raise FnError("bad_usage", f"unknown offer level {level!r}; one of {', '.join(OFFER_LEVELS)}")
    facts = OfferFacts(
        level=level,
        home=os.path.normpath(home or str(Path.home())),
        protected=agent_state_paths() if protected is None else protected,
        camera_available=camera_available,
    )
    return [entry for handler in HANDLERS for entry in handler.offer(facts)]
