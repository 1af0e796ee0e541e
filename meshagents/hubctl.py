"""Control a wg_hub service on this machine from catalog functions, as processes and
over its loopback operator API — without importing the app (functions never import meshagents.apps).

Reads the hub's TOML config (written by ``hub_config_write``) for its ports and state;
the operator API token comes from the key store entry the hub made at first start.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.state import project_root, state_dir
from meshagents.trust.keystore import open_keystore

DEFAULT_TOKEN_NAME = "wg_hub/api_token"  # noqa: S105 - a key store name


def read_config(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FnError("hub_config_missing", f"{path} does not exist (hub_config_write makes it)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FnError("hub_config_invalid", f"{path}: {exc}") from exc


def hub_state(cfg: dict[str, Any]) -> Path:
    d = Path(cfg["state_dir"]) if cfg.get("state_dir") else state_dir() / "wg_hub"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def operator_base(cfg: dict[str, Any]) -> str:
    return f"http://127.0.0.1:{int(cfg.get('operator_port', 8000))}"


def api_token(cfg: dict[str, Any]) -> str:
    raw = open_keystore().get(str(cfg.get("api_token_name", DEFAULT_TOKEN_NAME)))
    if raw is None:
        raise FnError("key_missing", "the hub's operator API token is not in the key store (start it once)")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def request(cfg: dict[str, Any], method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One call of the hub's operator API on loopback; HTTP errors keep the hub's code."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - a fixed http://127.0.0.1 base
        operator_base(cfg) + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {api_token(cfg)}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())
        except (json.JSONDecodeError, ValueError):
            err = {}
        detail = err.get("detail", err) if isinstance(err, dict) else {}
        code = detail.get("error") if isinstance(detail, dict) else None
        message = detail.get("message") if isinstance(detail, dict) else None
        raise FnError(str(code or f"hub_http_{exc.code}"), str(message or exc)) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FnError("hub_unreachable", f"{operator_base(cfg)}: {exc}") from exc


def healthy(cfg: dict[str, Any]) -> bool:
    try:
        with urllib.request.urlopen(operator_base(cfg) + "/healthz", timeout=1.0) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pidfile(cfg: dict[str, Any]) -> Path:
    return hub_state(cfg) / "wg_hub.pid"


def start(config: Path, wait_s: float) -> dict[str, Any]:
    """Start the hub as a detached process (own session, log in its state dir); idempotent."""
    cfg = read_config(config)
    pf = pidfile(cfg)
    if pf.exists():
        pid = int(pf.read_text().strip() or 0)
        if pid and _alive(pid):
            return {"pid": pid, "started": False, "healthy": healthy(cfg)}
    log = hub_state(cfg) / "wg_hub.log"
    env = dict(os.environ)
    root = project_root()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    env.setdefault("FN_CALLER", "wg_hub")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshagents.apps.wg_hub", "--config", str(config)],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # survives the ssh session or ./fn run that started it
        )
    pf.write_text(str(proc.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-800:]
            raise FnError("hub_start_failed", f"the hub exited with {proc.returncode}: {tail}")
        if healthy(cfg):
            return {"pid": proc.pid, "started": True, "healthy": True, "log": str(log)}
        time.sleep(0.1)
    # Not healthy in time: stop what we started, so a retry does not find a half-up hub
    # holding the ports and the pid file.
    stop(config, wait_s=5.0)
    raise FnError("hub_start_timeout", f"no /healthz on {operator_base(cfg)} after {wait_s} s (log: {log})")


def stop(config: Path, wait_s: float = 10.0) -> dict[str, Any]:
    cfg = read_config(config)
    pf = pidfile(cfg)
    if not pf.exists():
        return {"stopped": False, "reason": "not running"}
    pid = int(pf.read_text().strip() or 0)
    if not pid or not _alive(pid):
        pf.unlink(missing_ok=True)
        return {"stopped": False, "reason": "not running"}
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    pf.unlink(missing_ok=True)
    return {"stopped": True, "pid": pid}
