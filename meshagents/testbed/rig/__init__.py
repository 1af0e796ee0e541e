"""The local rig: the whole system on one machine, every part real (``./fn demo``, e2e tests).

    from meshagents.testbed.rig import Rig
    with Rig.up(devices=("home-wsl", "pc-aurgi"), docker=True) as rig: ...

Modules: ``rig.py`` (orchestration, start order, teardown), ``names.py`` (per-run
names), ``netns.py`` (namespaces, veths, the root-namespace guard), ``procs.py``
(process groups), ``forward.py`` (loopback forwards into the hub namespace),
``docker.py`` (the engine in its own namespace), ``config.py`` (what each part is
given), ``operator.py`` (the operator's Matrix client), ``demo.py`` (``./fn demo``),
``chat.py`` (``./fn chat``), ``install.py`` (missing Debian packages).
See docs/demo.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshagents.testbed.rig.rig import Rig

__all__ = ["Rig"]


def __getattr__(name: str) -> Any:
    # lazy: `./fn chat` and the unit tests import parts without the orchestration's deps
    if name == "Rig":
        from meshagents.testbed.rig.rig import Rig

        return Rig
    raise AttributeError(name)
