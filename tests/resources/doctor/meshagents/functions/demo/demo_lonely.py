"""demo_lonely: a function nobody calls."""

from __future__ import annotations

from meshagents.runtime.catalog import function


@function(id="demo_lonely", group="demo")
def demo_lonely() -> int:
    """Return one."""
    return 1
