"""Capability profile files (``<profiles_dir>/<name>.json``): one reader for the hub and the operator.

The hub checks a token's profile and builds manifests from its own copy; the operator's machine
signs against its copy (``opconfig.load_profile``). Both read the file the same way, so a name,
a missing file or a file without a ``capabilities`` list is refused with the same codes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.fsutil import load_json
from meshagents.trust.models import NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)


def read_profile(profiles_dir: Path, name: str) -> dict[str, Any]:
    """Profile ``name`` as written: ``profile_unknown`` for a bad name or no such file,
    ``profile_invalid`` for a file that is not a JSON object with a ``capabilities`` list."""
    if not _NAME.match(name):
        raise FnError("profile_unknown", f"no capability profile {name!r}")
    path = profiles_dir / f"{name}.json"
    missing = FnError("profile_unknown", f"no capability profile {name!r} in {profiles_dir}")
    data = load_json(path, missing=missing, invalid="profile_invalid")
    if not isinstance(data, dict) or not isinstance(data.get("capabilities"), list):
        raise FnError("profile_invalid", f"{path}: needs a capabilities list")
    return data
