"""demo_echo: test catalog function."""

from __future__ import annotations

from meshagents.runtime.catalog import function


@function(id="demo_echo", group="demo")
def demo_echo(text: str) -> dict[str, str]:
    """Echo text back."""
    return {"text": text}
