"""``meshagents agent upgrade``: a new version in place; keys, manifest, audit chain and nonce store kept.

The state directory is not touched: the agent's service is stopped, the new code is
installed with pip into the same environment the unit runs (``sys.executable``), then the
service is started again. install.sh leaves no pip in a device's venv (it is not needed to
run the agent), so an upgrade bootstraps it with the stdlib's ``ensurepip`` (offline: the
wheel Python ships) and removes it again afterwards, leaving the venv as small as it was.
The audit chain is verified with the agent stopped, before and
after pip, and the upgrade fails (``upgrade_chain_changed``, the agent left stopped) unless
the new code reads the same chain with the same head (entries and head hash).
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from typing import Any

from meshagents.enroll import journal as journal_mod
from meshagents.enroll import service
from meshagents.enroll.flow import CALLER, Progress, _state
from meshagents.enroll.precheck import ServiceKind
from meshagents.errors import FnError


def _version() -> str:
    out = subprocess.run(
        [sys.executable, "-c", "from importlib.metadata import version; print(version('meshagents'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def _has_pip() -> bool:
    """pip importable by this interpreter (the venv's: pip runs as ``sys.executable -m pip``)."""
    importlib.invalidate_caches()  # ensurepip may just have put it there
    return importlib.util.find_spec("pip") is not None


def _ensure_pip() -> bool:
    """pip in this environment for the upgrade; True when it had to be bootstrapped."""
    if _has_pip():
        return False
    res = subprocess.run([sys.executable, "-m", "ensurepip"], capture_output=True, text=True, check=False)
    if res.returncode != 0 or not _has_pip():
        raise FnError(
            "upgrade_failed",
            f"no pip in {sys.prefix} and ensurepip failed (Debian: apt install python3-venv): "
            + res.stderr.strip()[-400:],
        )
    return True


def _drop_pip() -> None:
    """The venv as install.sh left it: pip and setuptools are not needed to run the agent."""
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "--disable-pip-version-check",
         "pip", "setuptools"],
        capture_output=True,
        check=False,
    )  # fmt: skip


def _chain(device_id: str) -> dict[str, Any]:
    from meshagents.runtime.api import call

    try:
        res: dict[str, Any] = call("device_audit_verify_chain", caller=CALLER, device=device_id)
    except FnError as exc:
        if exc.code != "audit_missing":  # a device that never ran a command has no chain yet
            raise
        return {"ok": True, "devices": {}}
    return res


def _head(chain: dict[str, Any]) -> tuple[int, str | None]:
    devices = chain.get("devices") or {}
    d: dict[str, Any] = next(iter(devices.values()), {}) if isinstance(devices, dict) else {}
    return int(d.get("entries") or 0), d.get("head_hash")


def upgrade(spec: str, *, pip_args: tuple[str, ...] = (), progress: Progress | None = None) -> dict[str, Any]:
    progress = progress or Progress()
    state = _state()
    jr = journal_mod.load(state)
    if jr is None or not jr.complete():
        raise FnError("not_enrolled", "this device has no finished enrollment (meshagents enroll first)")
    device_id = str(jr.result["device_id"])
    kind: ServiceKind = (jr.result.get("service") or {}).get("kind") or "none"
    before_v = _version()
    # stopped first: pip replaces the modules a running agent still imports lazily, and nothing
    # may append to the chain between the two looks at its head
    stopped = service.stop(kind)
    before = _chain(device_id)
    n0, h0 = _head(before)
    progress.say(f"upgrade: meshagents {before_v}; agent stopped: {stopped}; audit chain of {device_id}"
                 f" verified ({n0} entries)")  # fmt: skip
    bootstrapped = _ensure_pip()
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", *pip_args, spec],
        capture_output=True,
        text=True,
        check=False,
    )
    if bootstrapped:
        _drop_pip()
    if res.returncode != 0:
        service.restart(kind)  # the old version, as it was
        raise FnError("upgrade_failed", f"pip install {spec} exited {res.returncode}: {res.stderr[-600:]}")
    after_v = _version()
    after = _chain(device_id)  # read by the new code, before the agent runs again
    n1, h1 = _head(after)
    ok = bool(after.get("ok", True))
    if (stopped and (n1, h1) != (n0, h0)) or n1 < n0 or not ok:
        raise FnError(
            "upgrade_chain_changed",
            f"the audit chain had {n0} entries (head {h0}) before and {n1} (head {h1}, ok={ok}) after;"
            " the agent is left stopped",
        )  # fmt: skip
    restarted = service.restart(kind)
    progress.say(f"upgrade: meshagents {before_v} -> {after_v}; same chain head; restarted: {restarted}")
    return {
        "device_id": device_id,
        "from": before_v,
        "to": after_v,
        "stopped": stopped,
        "restarted": restarted,
        "chain_before": {"entries": n0, "head_hash": h0},
        "chain_after_upgrade": {"entries": n1, "head_hash": h1, "ok": ok},
        "chain_after": after,
    }
