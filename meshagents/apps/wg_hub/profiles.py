"""Capability profiles: named JSON files a token points at (``profile`` field).

A profile file ``<profiles_dir>/<name>.json``::

    {"description": "...", "ttl_s": 31536000, "capabilities": [Capability, ...]}

Each capability is checked against the trust core's ``Capability`` model when the
profile is loaded, so a broken profile fails at the hub (``profile_invalid``), never
as a manifest a device cannot read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.trust.models import Capability, parse
from meshagents.trust.profiles import read_profile


def load_profile(profiles_dir: Path, name: str) -> dict[str, Any]:
    data = read_profile(profiles_dir, name)
    path = profiles_dir / f"{name}.json"
    caps = [
        parse(Capability, c, code="profile_invalid").model_dump(mode="json") for c in data["capabilities"]
    ]
    ttl = data.get("ttl_s")
    if ttl is not None and (not isinstance(ttl, int) or ttl <= 0):
        raise FnError("profile_invalid", f"{path}: ttl_s must be a positive integer")
    return {"name": name, "description": str(data.get("description", "")), "ttl_s": ttl, "capabilities": caps}


def list_profiles(profiles_dir: Path) -> list[str]:
    return sorted(p.stem for p in profiles_dir.glob("*.json"))
