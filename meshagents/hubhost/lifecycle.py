"""Status, upgrade, backup and restore of a provisioned hub host (runs on the host, as root)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.hubhost import apply, units
from meshagents.hubhost import spec as S
from meshagents.hubhost.files import chown_tree

#: what a backup holds besides the database dump (the hub store and keys live in STATE)
BACKUP_PATHS = (S.STATE, S.WG_DIR, S.ETC, S.SYNAPSE_DATA, Path("/var/lib/caddy"), S.CADDYFILE)


def all_units() -> list[str]:
    present = [f"{u}.service" for u in units.ORDER if (apply.UNIT_DIR / f"{u}.service").exists()]
    return ["meshagents-firewall.service", *present]


def unit_state(name: str) -> dict[str, Any]:
    out = apply.sh(
        [
            "systemctl",
            "show",
            name,
            "-p",
            "ActiveState,SubState,NRestarts,ActiveEnterTimestampMonotonic,MainPID,UnitFileState",
        ],
        check=False,
    ).stdout
    kv = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {
        "active": kv.get("ActiveState"),
        "sub": kv.get("SubState"),
        "enabled": kv.get("UnitFileState"),
        "restarts": int(kv.get("NRestarts") or 0),
        "pid": int(kv.get("MainPID") or 0),
        "since_monotonic_us": int(kv.get("ActiveEnterTimestampMonotonic") or 0),
    }


def hub_config() -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(S.HUB_CONFIG.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FnError(
            "hub_not_provisioned", f"{S.HUB_CONFIG} is missing: run provision_wg_hub --host"
        ) from exc


def certificate(domain: str, port: int = 443) -> dict[str, Any]:
    """The certificate Caddy serves for ``domain`` (read from the loopback, not verified here)."""
    from cryptography import x509

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=domain) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        return {"ok": False, "error": str(exc)}
    if not der:
        return {"ok": False, "error": "no certificate"}
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    days = (not_after - dt.datetime.now(dt.UTC)).total_seconds() / 86400
    return {
        "ok": days > 0,
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": not_after.isoformat(),
        "days_left": round(days, 1),
    }


def homeserver(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_matrix/client/versions", timeout=5) as resp:  # noqa: S310
            versions = json.loads(resp.read()).get("versions", [])
        return {"ok": True, "url": url, "versions": versions[-1:] if versions else []}
    except (OSError, ValueError) as exc:
        return {"ok": False, "url": url, "error": str(exc)}


def status() -> dict[str, Any]:
    from meshagents.runtime.api import call

    cfg = hub_config()
    names = all_units()
    svc = {n: unit_state(n) for n in names}
    iface = str(cfg.get("interface", "wg0"))
    try:
        wg = call(
            "wg_status",
            interface=iface,
            config_dir=Path(str(cfg.get("config_dir", S.WG_DIR))),
            caller="hub_host_status",
        )
        mesh = {
            "backend": wg["backend"],
            "peers": wg["peer_count"],
            "online": wg["online_count"],
            "handshakes": {str(p["name"] or p["public_key"][:8]): p["handshake_age_s"] for p in wg["peers"]},
        }
    except FnError as exc:
        mesh = {"error": exc.code, "message": exc.message}
    settings = S.MATRIX_SETTINGS
    hs_url = "http://127.0.0.1:8008"
    if settings.exists():
        import tomllib

        hs_url = str(tomllib.loads(settings.read_text(encoding="utf-8")).get("homeserver", hs_url))
    out: dict[str, Any] = {
        "release": apply.current_release(),
        "units": svc,
        "mesh": mesh,
        "homeserver": homeserver(hs_url),
    }
    public = str(cfg.get("public_url") or "")
    if public.startswith("https://"):
        domain = public.removeprefix("https://").split("/")[0].split(":")[0]
        out["certificate"] = certificate(domain)
        out["caddy"] = unit_state("caddy.service")
    out["ok"] = (
        all(u["active"] == "active" for u in svc.values())
        and out["homeserver"]["ok"]
        and ("error" not in mesh)
        and out.get("certificate", {"ok": True})["ok"]
    )
    return out


# -- backup / restore --------------------------------------------------------------------------


def _sqlite_copy(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included) through the backup API."""
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def backup(dest_dir: Path = S.BACKUPS) -> dict[str, Any]:
    """One archive (0600) of everything a restored hub needs; services keep running."""
    dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = dest_dir / f"hub-{stamp}.tar.gz"
    with tempfile.TemporaryDirectory(prefix="meshagents-backup-") as tmp:
        work = Path(tmp)
        dump = work / "synapse.pgdump"
        has_db = (
            shutil.which("pg_dump") is not None
            and apply.psql(f"SELECT 1 FROM pg_database WHERE datname='{S.SYNAPSE_DB}'") == "1"  # noqa: S608
        )
        if has_db:
            with dump.open("wb") as fh:
                proc = subprocess.run(
                    ["runuser", "-u", "postgres", "--", "pg_dump", "-Fc", S.SYNAPSE_DB],
                    stdout=fh,
                    stderr=subprocess.PIPE,
                    env=apply.clean_env(),
                    check=False,
                )
            if proc.returncode != 0:
                raise FnError("backup_failed", f"pg_dump: {proc.stderr.decode(errors='replace')[-300:]}")
        fd = os.open(out.with_suffix(".part"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        files = 0
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            if has_db:
                tar.add(dump, arcname="synapse.pgdump")
            for root in BACKUP_PATHS:
                if not root.exists():
                    continue
                paths = [root] if root.is_file() else sorted(root.rglob("*"))
                tar.add(root, arcname="files" + str(root), recursive=False)
                for p in paths if root.is_dir() else []:
                    arc = "files" + str(p)
                    if p.is_file() and not p.is_symlink() and _is_sqlite(p):
                        copy = work / "db.tmp"
                        _sqlite_copy(p, copy)
                        info = tar.gettarinfo(str(p), arcname=arc)
                        info.size = copy.stat().st_size
                        with copy.open("rb") as fh:
                            tar.addfile(info, fh)
                        copy.unlink()
                    elif p.name.endswith(("-wal", "-shm")) and _is_sqlite(p.with_name(p.name[:-4])):
                        continue  # folded into the copy above
                    else:
                        tar.add(p, arcname=arc, recursive=False)
                    files += 1
        out.with_suffix(".part").rename(out)
    return {"archive": str(out), "bytes": out.stat().st_size, "files": files, "database": has_db}


def stop_all() -> list[str]:
    stopped = []
    for name in reversed([f"{u}.service" for u in units.ORDER]):
        if apply.is_active(name):
            apply.sh(["systemctl", "stop", name])
            stopped.append(name)
    return stopped


def restore(archive: Path) -> dict[str, Any]:
    """Stop the services, put every file back, reload the database, start in order, check health."""
    if not archive.is_file():
        raise FnError("backup_missing", f"{archive} does not exist on the host")
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            bad_link = (m.issym() or m.islnk()) and (
                m.linkname.startswith("/") or ".." in m.linkname.split("/")
            )
            if (
                not (m.name == "synapse.pgdump" or m.name.startswith("files/"))
                or ".." in m.name.split("/")
                or (bad_link and not m.name.startswith("files/opt"))
            ):
                raise FnError("backup_invalid", f"unexpected member {m.name!r} in {archive}")
        stopped = stop_all()
        caddy_was = apply.is_active("caddy.service")
        if caddy_was:
            apply.sh(["systemctl", "stop", "caddy.service"])
        with tempfile.TemporaryDirectory(prefix="meshagents-restore-") as tmp:
            try:
                tar.extractall(tmp, filter="tar")
            except TypeError:  # Debian 12's Python 3.11.2 predates extraction filters; names checked above
                tar.extractall(tmp)  # noqa: S202
            base = Path(tmp) / "files"
            for root in BACKUP_PATHS:
                src = base / str(root).lstrip("/")
                if not src.exists():
                    continue
                if root.is_dir() and src.is_dir():
                    shutil.rmtree(root)
                shutil.copytree(src, root, symlinks=True) if src.is_dir() else shutil.copy2(src, root)
                _chown_like(src, root)
            # what the hub's services write is theirs, whoever wrote it before the backup (a
            # root-run `fn run wg_peer_add` on the host leaves root's files in /etc/wireguard)
            chown_tree(S.STATE, S.USER, S.USER)
            chown_tree(S.WG_DIR, S.USER, S.USER)
            dump = Path(tmp) / "synapse.pgdump"
            db = dump.exists()
            if db:
                os.chmod(tmp, 0o755)  # noqa: S103 - the postgres user reads the dump; removed right after
                os.chmod(dump, 0o644)
                proc = subprocess.run(
                    [
                        "runuser",
                        "-u",
                        "postgres",
                        "--",
                        "pg_restore",
                        "--clean",
                        "--if-exists",
                        "--no-owner",
                        f"--role={S.SYNAPSE_USER}",
                        "-d",
                        S.SYNAPSE_DB,
                        str(dump),
                    ],
                    capture_output=True,
                    text=True,
                    env=apply.clean_env(),
                    check=False,
                )
                if proc.returncode != 0:
                    raise FnError("restore_failed", f"pg_restore: {proc.stderr[-400:]}")
    # enabled means provisioned with TLS (also after a restore that failed half-way and stopped it)
    if (
        caddy_was
        or apply.sh(["systemctl", "is-enabled", "caddy.service"], check=False).stdout.strip() == "enabled"
    ):
        apply.sh(["systemctl", "start", "caddy.service"])
    apply.sh(["systemctl", "restart", "meshagents-firewall.service"], check=False)
    started = start_in_order(with_mesh=True)
    return {"archive": str(archive), "stopped": stopped, "started": started, "database": db}


def _chown_like(src: Path, dst: Path) -> None:
    """Owners come from the archive's numeric ids (same host, same users)."""
    for s in [src, *src.rglob("*")] if src.is_dir() else [src]:
        st = s.lstat()
        d = dst / s.relative_to(src) if src.is_dir() else dst
        os.lchown(d, st.st_uid, st.st_gid)


def start_in_order(*, with_mesh: bool = False) -> list[str]:
    """Restart (or start) the hub's units in their order, then wait until all are healthy."""
    started = []
    for unit in (
        sorted(apply.UNIT_DIR.glob("meshagents-wg-*.service")) if with_mesh else []
    ):  # the mesh interface from its config
        apply.sh(["systemctl", "restart", unit.name])
        started.append(unit.name)
    for u in units.ORDER:
        name = f"{u}.service"
        if (apply.UNIT_DIR / name).exists():
            apply.sh(["systemctl", "restart", name])
            started.append(name)
    health()
    apply.stamp_services()
    return started


def health(timeout: float = 120) -> dict[str, Any]:
    cfg = hub_config()
    apply.wait_http(f"http://127.0.0.1:{int(cfg.get('operator_port', 8000))}/healthz", timeout)
    if (apply.UNIT_DIR / "meshagents-synapse.service").exists():
        apply.wait_http("http://127.0.0.1:8008/_matrix/client/versions", timeout)
    bot_port = 8766
    if S.BOT_CONFIG.exists():
        import tomllib

        bot_port = int(tomllib.loads(S.BOT_CONFIG.read_text(encoding="utf-8")).get("control_port", 8766))
    spec = S.HostSpec(server_name="-", bot_port=bot_port)
    return apply.wait_bot(spec, timeout)


# -- upgrade ------------------------------------------------------------------------------------


def upgrade(code_root: Path, health_timeout: float = 120) -> dict[str, Any]:
    """New release beside the old one, switch, restart in order, check; switch back on failure."""
    previous = apply.current_release()
    if previous is None:
        raise FnError("hub_not_provisioned", "no current release: run provision_wg_hub --host first")
    rid, changed = apply.install_release(code_root)
    if rid == previous:
        return {"release": rid, "previous": previous, "changed": [], "restarted": []}
    apply.switch_current(rid)
    try:
        restarted = start_in_order()  # migrations run as each service starts (Synapse, the hub store)
    except FnError as exc:
        apply.switch_current(previous)
        try:
            start_in_order()
            back = "the previous release runs again"
        except FnError as again:
            back = f"the previous release did not come back either: {again.message}"
        raise FnError(
            "upgrade_rolled_back",
            f"release {rid} failed its health check ({exc.message}); {back}",
            release=rid,
            previous=previous,
        ) from exc
    return {
        "release": rid,
        "previous": previous,
        "changed": [*changed, f"current -> {rid}"],
        "restarted": restarted,
    }
