"""Devices of the rig run from an installed copy (a venv made from the wheel), not the checkout.

    hide_checkout(checkout, argv) -> argv    # argv in a mount namespace where checkout is an
                                             # empty tmpfs: the repository is unreadable to it
    installed_env(env, venv) -> env          # nothing pointing into the checkout; venv/bin first
    pipeline(venv, name) -> Path             # meshagents/pipelines/NAME inside the venv

So a test sees what an operator's device sees: the wheel's files and nothing else.
"""

from __future__ import annotations

from pathlib import Path

# sh -c SCRIPT CHECKOUT ARGV...: mount an empty tmpfs over CHECKOUT, then become ARGV
_HIDE = 'mount -t tmpfs -o mode=0755,size=64k meshagents-hidden "$0" && exec "$@"'


def hide_checkout(checkout: Path, argv: list[str]) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _HIDE, str(checkout), *argv]


def installed_env(env: dict[str, str], venv: Path) -> dict[str, str]:
    out = {k: v for k, v in env.items() if k not in ("FN_PROJECT_ROOT", "PYTHONPATH", "VIRTUAL_ENV", "FN")}
    out["PATH"] = f"{venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"
    return out


def pipeline(venv: Path, name: str) -> Path:
    found = sorted(venv.glob(f"lib/python3*/site-packages/meshagents/pipelines/{name}"))
    if not found:
        raise FileNotFoundError(f"no pipeline {name} installed in {venv}")
    return found[0]
