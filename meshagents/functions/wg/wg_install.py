"""wg_install: install WireGuard tools (and wireguard-go where the kernel has no WireGuard)."""

from __future__ import annotations

from typing import Any

from meshagents.runtime.catalog import function


@function(id="wg_install", group="wg", requires=["root", "network"])
def wg_install(dry_run: bool = False, hub: bool = False) -> dict[str, Any]:
    """Install wireguard-tools (+ wireguard-go without kernel WireGuard; --hub: nftables, git).

    Args:
        dry_run: only report the plan (platform, packages, missing ones, commands); install nothing.
        hub: also install what a hub needs: nftables and git (apt platforms; Termux installs wireguard-tools
            only).
    """
    from meshagents.wg.install import current_plan, execute

    plan = current_plan(hub)
    if not dry_run:
        execute(plan)
    return {**plan.to_json(), "dry_run": dry_run, "changed": bool(plan.missing) and not dry_run}
