"""Where generated state lives: FN_STATE_DIR, else /var/lib/meshagents (root) or
~/.local/state/meshagents. Nothing generated goes inside the repository."""

from __future__ import annotations

import os
from pathlib import Path

from meshagents.errors import FnError

PROJECT = "meshagents"


def state_dir() -> Path:
    """The state directory, created 0700 on first use."""
    env = os.environ.get("FN_STATE_DIR")
    if env:
        path = Path(env)
    elif os.geteuid() == 0:
        path = Path("/var/lib") / PROJECT
    else:
        path = Path.home() / ".local" / "state" / PROJECT
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def project_root() -> Path:
    """The directory that holds the package ``meshagents/``: the checkout in development
    (with tests/, docs/, bench/ beside it), site-packages when installed from a wheel."""
    env = os.environ.get("FN_PROJECT_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent


def checkout_root(command: str) -> Path:
    """The git checkout, for the developers' commands that read tests/, bench/, docs/ or
    pyproject.toml (``fn test``, ``fn index``, ``fn doctor``, ...). An installed copy has
    none of them: ``needs_checkout`` names the command instead of a stack trace."""
    root = project_root()
    if (root / "pyproject.toml").is_file() and (root / "tests").is_dir():
        return root
    raise FnError(
        "needs_checkout",
        f"'{command}' needs a checkout of the repository (tests/, docs/, pyproject.toml: git clone, then "
        f"./fn {command} there, or FN_PROJECT_ROOT=<checkout>); this meshagents is installed at {root}",
    )


def package_dir(root: Path | None = None) -> Path:
    """The one import root: the catalog (functions/, registry.toml), apps/ and pipelines/."""
    return (root or project_root()) / PROJECT


def cache_dir() -> Path:
    """Rebuildable downloads (remote bundles): FN_CACHE_DIR, else $XDG_CACHE_HOME or
    ~/.cache, under ``meshagents``. Unlike the state directory, losing it costs only time."""
    env = os.environ.get("FN_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / PROJECT
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base
