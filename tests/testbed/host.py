"""What a test needs from the machine, and where the checkout is.

``require_root`` / ``require_binary`` skip with the reason; under ``CI=true`` the root
conftest turns every skip into a failure, so CI never goes green by skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
#: The checkout (the directory that holds ``fn``, ``meshagents/`` and ``tests/``).
ROOT = Path(__file__).resolve().parents[2]


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def require_binary(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (installed by .ci/run)")
