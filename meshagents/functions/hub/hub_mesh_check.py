"""hub_mesh_check: after a device joined, wait until the hub answers /healthz over the mesh."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.runtime.catalog import function


@function(id="hub_mesh_check", group="hub", requires=["network", "wireguard"])
def hub_mesh_check(
    url: str = "http://10.42.0.1:8000/healthz",
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Poll URL over the mesh until it answers 200 (the first packet makes the handshake); report it.

    Args:
        url: http(s) URL to poll until it answers 200 with JSON, normally the hub's /healthz on its mesh
            address and operator port.
        interface: this device's mesh interface, whose hub handshake is reported.
        config_dir: directory of that interface's config (and ledger, if any).
        netns: network namespace name under /run/netns of that interface: the URL is polled from it and
            its handshake reported; default: this process's namespace (and the ledger's for the report).
        timeout_s: seconds to keep polling (1 s per attempt) before failing with mesh_unreachable.
    """
    import json
    import urllib.error
    import urllib.request

    from meshagents.runtime.api import call
    from meshagents.wg.netns import call_in

    if not url.startswith(("http://", "https://")):
        raise FnError("bad_usage", "url must be http(s)")

    def poll() -> Any:
        last = "no answer"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:  # noqa: S310 - http(s) checked above
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = type(exc).__name__
            if time.perf_counter() > deadline:
                raise FnError("mesh_unreachable", f"{url} did not answer within {timeout_s} s ({last})")
            time.sleep(0.05)

    t0 = time.perf_counter()
    deadline = t0 + timeout_s
    body = call_in(netns or None, poll)
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    status = call(
        "wg_status", caller="hub_mesh_check", interface=interface, config_dir=config_dir, netns=netns
    )
    hub = status["peers"][0] if status["peers"] else {}
    return {
        "url": url,
        "healthz": body,
        "elapsed_ms": round(elapsed_ms, 1),
        "latest_handshake": hub.get("latest_handshake"),
        "handshake_age_s": hub.get("handshake_age_s"),
    }
