"""Doctor checks: each a small module with ``check(root) -> list[Problem]``.

Errors make ``fn doctor`` exit 1; warnings only print (hassfest style).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from meshagents.runtime.doctor.base import Problem

CHECKS: dict[str, str] = {
    "unused": "meshagents.runtime.doctor.unused",
    "uses-functions": "meshagents.runtime.doctor.uses_functions",
    "services-spec": "meshagents.runtime.doctor.services_spec",
    "secrets": "meshagents.runtime.doctor.secrets",
    "registry": "meshagents.runtime.doctor.registry_fresh",
    "wg-drift": "meshagents.runtime.doctor.wg_drift",
    "layers": "meshagents.runtime.doctor.layers",
}


def get_check(name: str) -> Callable[[Path], list[Problem]]:
    module = importlib.import_module(CHECKS[name])
    check: Callable[[Path], list[Problem]] = module.check
    return check


def run_checks(root: Path, names: list[str]) -> dict[str, list[Problem]]:
    return {name: get_check(name)(root) for name in names}
