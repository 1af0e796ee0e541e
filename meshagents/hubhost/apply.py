"""Make a Debian host the hub, one part at a time, changing only what differs.

Runs on the host as root (``fn run --host H hub_host_apply --part P ...``). Every part
returns ``{"part", "changed": [...], "restarted": [...]}``; with the same flags a
second run reports both empty. Services restart only when something they read changed:
each unit's inputs (its unit text, its config files, the release it runs) are hashed
into ``/var/lib/meshagents-provision/<unit>.inputs`` and compared with the last start.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.hubhost import caddy, firewall, synapse_conf, tomlmerge, units
from meshagents.hubhost import spec as S
from meshagents.hubhost.files import chown_tree, ensure_dir, ensure_file

UNIT_DIR = Path("/etc/systemd/system")
INPUTS = Path("/var/lib/meshagents-provision")
SYNAPSE_REQS = ("matrix-synapse", "psycopg2-binary")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the host's own programs: without this bundle's PYTHONPATH, which
    would make pip take the bundle's packages for installed ones (and skip them in a venv)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FN_PROJECT_ROOT")}
    env.update(extra or {})
    return env


def sh(
    argv: list[str],
    *,
    check: bool = True,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=clean_env(env), input=input_text, check=False
    )
    if check and proc.returncode != 0:
        raise FnError(
            "host_step_failed", f"{' '.join(argv[:4])}: {(proc.stderr or proc.stdout).strip()[-400:]}"
        )
    return proc


def result(part: str, changed: list[str], restarted: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"part": part, "changed": changed, "restarted": restarted or [], **extra}


# -- packages -------------------------------------------------------------------------------


def missing_packages(names: list[str]) -> list[str]:
    out = []
    for name in names:
        q = sh(["dpkg-query", "-W", "-f=${Status}", name], check=False)
        if q.returncode != 0 or "install ok installed" not in q.stdout:
            out.append(name)
    return out


def packages(spec: S.HostSpec) -> dict[str, Any]:
    missing = missing_packages(S.packages(spec))
    if missing:
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
        if sh(argv, check=False, env=env).returncode != 0:
            sh(["apt-get", "update", "-q"], env=env, check=False)
            sh(argv, env=env)
    return result("packages", [f"installed {p}" for p in missing])


# -- code release -----------------------------------------------------------------------------


def install_release(code_root: Path) -> tuple[str, list[str]]:
    """Copy the running bundle to ``releases/<id>`` (read-only for the services); (id, changed)."""
    rid = code_root.name
    target = S.RELEASES / rid
    changed: list[str] = []
    if not (target / ".complete").exists():
        part = target.with_name(rid + ".part")
        shutil.rmtree(part, ignore_errors=True)
        shutil.copytree(
            code_root, part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", ".complete")
        )
        sh(["chmod", "-R", "u=rwX,go=rX", str(part)])
        sh(["chown", "-R", "root:root", str(part)])
        (part / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        part.rename(target)
        changed.append(f"release {rid} installed")
    return rid, changed


def current_release() -> str | None:
    return os.readlink(S.CURRENT).rsplit("/", 1)[-1] if S.CURRENT.is_symlink() else None


def switch_current(rid: str) -> None:
    tmp = S.CURRENT.with_name("current.new")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(f"releases/{rid}", tmp)
    os.replace(tmp, S.CURRENT)


def release(code_root: Path) -> dict[str, Any]:
    """The first install puts this bundle in place; later runs leave the running release alone
    (``fn hub upgrade`` replaces it, with a health check and a way back) and only say so."""
    S.RELEASES.mkdir(parents=True, exist_ok=True)
    os.chmod(S.OPT, 0o755)  # noqa: S103 - code, readable by the service users, written by root only
    changed: list[str] = []
    note = None
    running = current_release()
    if running is None:
        rid, changed = install_release(code_root)
        switch_current(rid)
        changed.append(f"current -> {rid}")
    elif running != code_root.name:
        note = f"the hub runs release {running}, this checkout is {code_root.name}: fn hub upgrade switches"
    changed += ensure_file(S.LAUNCHER, units.launcher_script(), 0o755)
    return result("release", changed, release=current_release(), note=note)


# -- users, directories ----------------------------------------------------------------------


def ensure_user(name: str, home: Path) -> list[str]:
    if sh(["getent", "passwd", name], check=False).returncode == 0:
        return []
    sh(
        [
            "useradd",
            "--system",
            "--user-group",
            "--home-dir",
            str(home),
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ]
    )
    return [f"user {name}"]


def git_safe_root(directory: Path) -> list[str]:
    """root's git refuses a repository another user owns (the hub's /etc/wireguard)."""
    have = sh(["git", "config", "--global", "--get-all", "safe.directory"], check=False).stdout.split()
    if str(directory) in have:
        return []
    sh(["git", "config", "--global", "--add", "safe.directory", str(directory)])
    return [f"git safe.directory {directory}"]


def base(spec: S.HostSpec) -> dict[str, Any]:
    changed = ensure_user(S.USER, S.STATE)
    if spec.matrix == "embedded":
        changed += ensure_user(S.SYNAPSE_USER, S.SYNAPSE_DATA)
    changed += ensure_dir(S.ETC, 0o711, "root", "root")  # traversable; each file says who reads it
    changed += ensure_dir(S.STATE, 0o700, S.USER, S.USER)
    changed += ensure_dir(INPUTS, 0o700)
    changed += git_safe_root(S.WG_DIR)
    return result("base", changed)


def local_service_user(config_dir: Path, hub_config: Path, code_root: Path) -> dict[str, Any]:
    """The single-box path (``provision_wg_hub`` without ``--host``) under systemd: the wg_hub
    unit it installs (``fn service render wg_hub``, from the app's ``service:`` block) runs as
    a system user with its own state directory and writes the WireGuard config directory.
    Make that user and give it those directories and the hub's config, as ``--host``'s base
    step does. A state or config directory other than the unit's would leave the service
    without its keys or peers: refused, named (``service_mismatch``), nothing changed."""
    from meshagents.runtime.appspec import load_app
    from meshagents.state import state_dir

    svc = dict(load_app(code_root / "meshagents" / "apps" / "wg_hub").service or {})
    user = str(svc.get("user") or "root")
    group = str(svc.get("group") or user)
    unit_state = Path(str(dict(svc.get("environment") or {}).get("FN_STATE_DIR", S.STATE)))
    writable = [Path(h.split("=", 1)[1]) for h in svc.get("hardening", []) if h.startswith("ReadWritePaths=")]
    if writable and config_dir.resolve() not in [w.resolve() for w in writable]:
        raise FnError(
            "service_mismatch",
            f"the wg_hub unit may write only {', '.join(map(str, writable))}, "
            f"this hub's WireGuard config is in {config_dir}: use --config-dir {writable[0]}",
        )
    here = state_dir()
    if here.resolve() != unit_state.resolve():
        raise FnError(
            "service_mismatch",
            f"the wg_hub unit runs with FN_STATE_DIR={unit_state}, this hub's "
            f"state is {here}: run as root without FN_STATE_DIR, or start the hub by hand",
        )
    if user == "root":
        return result("service_user", [])
    changed = ensure_user(user, unit_state)
    changed += chown_tree(unit_state, user, group)
    changed += chown_tree(config_dir, user, group)
    changed += git_safe_root(config_dir)
    if hub_config.exists():
        changed += ensure_dir(hub_config.parent, 0o711, "root", "root")
        changed += ensure_file(hub_config, hub_config.read_bytes(), 0o600, user, group)
    return result("service_user", changed, user=user)


def own_state(spec: S.HostSpec) -> list[str]:
    """Files root-run steps made for the services (keys, ledger, configs) go to the service user."""
    changed = chown_tree(S.STATE, S.USER, S.USER)
    changed += chown_tree(S.WG_DIR, S.USER, S.USER)
    for cfg in (S.HUB_CONFIG,):
        if cfg.exists():
            changed += ensure_file(cfg, cfg.read_bytes(), 0o600, S.USER, S.USER)
    return changed


# -- firewall --------------------------------------------------------------------------------


def table_present() -> bool:
    return sh(["nft", "list", "table", "inet", firewall.TABLE], check=False).returncode == 0


def apply_firewall(spec: S.HostSpec) -> dict[str, Any]:
    changed = ensure_file(S.HOST_NFT, firewall.rules(spec), 0o600)
    name = "meshagents-firewall.service"
    unit_changed = install_units(
        {name: units.render_all(spec, Path(os.environ.get("FN_PROJECT_ROOT", "/")))[name]}
    )
    changed += unit_changed
    changed += enable([name])
    # the unit loads the file (at boot, and now): a restart re-applies it atomically
    if not is_active(name):
        sh(["systemctl", "start", name])
        changed.append(f"started {name}")
    elif changed or not table_present():
        sh(["systemctl", "restart", name])
        changed.append(f"restarted {name} (rules loaded)")
    return result(
        "firewall", changed, public_tcp=firewall.public_tcp_ports(spec), public_udp=[spec.listen_port]
    )


# -- systemd ---------------------------------------------------------------------------------


def install_units(texts: dict[str, str]) -> list[str]:
    changed: list[str] = []
    for name, text in texts.items():
        changed += ensure_file(UNIT_DIR / name, text, 0o644)
    if changed:
        sh(["systemctl", "daemon-reload"])
    return changed


def enable(names: list[str]) -> list[str]:
    out = []
    for name in names:
        if sh(["systemctl", "is-enabled", name], check=False).stdout.strip() != "enabled":
            sh(["systemctl", "enable", name])
            out.append(f"enabled {name}")
    return out


def is_active(name: str) -> bool:
    return sh(["systemctl", "is-active", name], check=False).stdout.strip() == "active"


def inputs_digest(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(str(p).encode() + b"\0")
        h.update(p.read_bytes() if p.exists() else b"<missing>")
    return h.hexdigest()


def start_or_restart(name: str, digest: str) -> str | None:
    """Start a stopped unit; restart a running one whose inputs changed; None when left alone."""
    stamp = INPUTS / f"{name}.inputs"
    old = stamp.read_text(encoding="utf-8").strip() if stamp.exists() else None
    action: str | None = None
    if not is_active(name):
        sh(["systemctl", "start", name])
        action = f"started {name}"
    elif old != digest:
        sh(["systemctl", "restart", name])
        action = f"restarted {name}"
    if old != digest:
        stamp.write_text(digest + "\n", encoding="utf-8")
    return action


#: How long a service may take to answer after its start. A small VPS answers in seconds; a slow
#: one (the test VM under software emulation at load 9: the bot's first Matrix login, E2EE keys
#: and the approvals room) took minutes, and a provision that gives up then is worse than a wait.
START_TIMEOUT = 300.0


def journal_tail(unit: str, lines: int = 15) -> str:
    """The unit's last journal lines, for an error that says a service did not come up."""
    proc = sh(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "cat"], check=False)
    text = proc.stdout.strip()
    return f"\n--- journalctl -u {unit} (last {lines} lines):\n{text}" if text else ""


def wait_http(
    url: str, timeout: float, ok: int = 200, headers: dict[str, str] | None = None, unit: str | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback URLs we built
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
                if resp.status == ok:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise FnError(
        "service_unhealthy",
        f"{url} did not answer {ok} within {timeout:.0f} s ({last})" + (journal_tail(unit) if unit else ""),
    )


# -- Synapse ---------------------------------------------------------------------------------


def synapse_venv(wheels: Path | None) -> list[str]:
    py = S.SYNAPSE_VENV / "bin" / "python"
    stamp = S.SYNAPSE_VENV / ".meshagents-wheels"
    if wheels is None:
        if not py.exists():
            raise FnError(
                "bad_usage", "the Synapse venv is missing: give --wheels-dir (the pipeline ships it)"
            )
        return []
    wheel_files = sorted(wheels.glob("*.whl"))
    want = hashlib.sha256(("v3\n" + "\n".join(p.name for p in wheel_files)).encode()).hexdigest()
    if py.exists() and stamp.exists() and stamp.read_text(encoding="utf-8").strip() == want:
        return []
    changed = []
    if not py.exists():
        sh(["python3", "-m", "venv", str(S.SYNAPSE_VENV)])
        changed.append("synapse venv created")
    # The directory holds exactly the closure resolved for this platform on the operator's
    # machine: install every wheel as it is (no second resolution here), then check it.
    pip = [str(py), "-m", "pip", "--disable-pip-version-check"]
    sh([*pip, "install", "--quiet", "--no-index", "--no-deps", *map(str, wheel_files)])
    sh([*pip, "check"])
    stamp.write_text(want + "\n", encoding="utf-8")
    changed.append("synapse installed from shipped wheels")
    return changed


def psql(sql: str) -> str:
    return sh(["runuser", "-u", "postgres", "--", "psql", "-tAc", sql]).stdout.strip()


def postgres_db() -> list[str]:
    changed = enable(["postgresql.service"])
    if not is_active("postgresql.service"):
        sh(["systemctl", "start", "postgresql.service"])
    # constant names from spec.py, never input
    if psql(f"SELECT 1 FROM pg_roles WHERE rolname='{S.SYNAPSE_USER}'") != "1":  # noqa: S608
        sh(["runuser", "-u", "postgres", "--", "createuser", S.SYNAPSE_USER])
        changed.append(f"postgres role {S.SYNAPSE_USER}")
    if psql(f"SELECT 1 FROM pg_database WHERE datname='{S.SYNAPSE_DB}'") != "1":  # noqa: S608
        sh(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "createdb",
                "--encoding=UTF8",
                "--locale=C",
                "--template=template0",
                f"--owner={S.SYNAPSE_USER}",
                S.SYNAPSE_DB,
            ]
        )
        changed.append(f"postgres database {S.SYNAPSE_DB}")
    return changed


def synapse_secret_files() -> list[str]:
    """Made once and kept: rotating them would log everybody out."""
    changed = []
    if not S.SYNAPSE_SECRETS.exists():
        text = f"macaroon_secret_key: {secrets.token_urlsafe(32)}\nform_secret: {secrets.token_urlsafe(32)}\n"
        changed += ensure_file(S.SYNAPSE_SECRETS, text, 0o640, "root", S.SYNAPSE_USER)
    else:
        changed += ensure_file(
            S.SYNAPSE_SECRETS, S.SYNAPSE_SECRETS.read_bytes(), 0o640, "root", S.SYNAPSE_USER
        )
    secret = S.REGISTRATION_SECRET.read_bytes() if S.REGISTRATION_SECRET.exists() else None
    # the hub (group meshagents) registers device accounts with it; Synapse (owner) checks it
    changed += ensure_file(
        S.REGISTRATION_SECRET,
        secret or (secrets.token_urlsafe(32) + "\n").encode(),
        0o640,
        S.SYNAPSE_USER,
        S.USER,
    )
    return changed


def synapse(spec: S.HostSpec, wheels: Path | None) -> dict[str, Any]:
    if spec.matrix != "embedded":
        return result("synapse", [], note="--matrix existing: nothing to install")
    changed = synapse_venv(wheels)
    changed += postgres_db()
    changed += ensure_dir(S.SYNAPSE_ETC, 0o750, "root", S.SYNAPSE_USER)
    changed += ensure_file(
        S.SYNAPSE_CONF, synapse_conf.dump(synapse_conf.homeserver_config(spec)), 0o640, "root", S.SYNAPSE_USER
    )
    changed += ensure_file(
        S.SYNAPSE_LOG_CONF, synapse_conf.dump(synapse_conf.log_config()), 0o640, "root", S.SYNAPSE_USER
    )
    changed += synapse_secret_files()
    changed += ensure_dir(S.SYNAPSE_DATA, 0o700, S.SYNAPSE_USER, S.SYNAPSE_USER)
    if not (S.SYNAPSE_DATA / "signing.key").exists():
        sh(
            [
                "runuser",
                "-u",
                S.SYNAPSE_USER,
                "--",
                str(S.SYNAPSE_VENV / "bin" / "python"),
                "-m",
                "synapse.app.homeserver",
                "--config-path",
                str(S.SYNAPSE_CONF),
                "--config-path",
                str(S.SYNAPSE_SECRETS),
                "--generate-keys",
            ]
        )
        changed.append("synapse signing key")
    name = "meshagents-synapse.service"
    text = units.render_all(spec, Path(os.environ.get("FN_PROJECT_ROOT", "/")))[name]
    changed += install_units({name: text})
    changed += enable([name])
    digest = inputs_digest(
        [
            UNIT_DIR / name,
            S.SYNAPSE_CONF,
            S.SYNAPSE_LOG_CONF,
            S.SYNAPSE_SECRETS,
            S.SYNAPSE_VENV / ".meshagents-wheels",
        ]
    )
    action = start_or_restart(name, digest)
    wait_http(f"http://127.0.0.1:{spec.synapse_port}/_matrix/client/versions", START_TIMEOUT, unit=name)
    return result("synapse", changed, [action] if action else [])


# -- TLS (Caddy) -----------------------------------------------------------------------------


def tls(spec: S.HostSpec) -> dict[str, Any]:
    if spec.tls == "off":
        return result("tls", [], note="no --domain: Element reaches the homeserver over the mesh")
    changed = ensure_file(S.CADDYFILE, caddy.caddyfile(spec), 0o644)
    restarted = []
    sh(["caddy", "validate", "--config", str(S.CADDYFILE), "--adapter", "caddyfile"])
    changed += enable(["caddy.service"])
    if not is_active("caddy.service"):
        sh(["systemctl", "start", "caddy.service"])
        restarted.append("started caddy.service")
    elif any(str(S.CADDYFILE) in c for c in changed):
        sh(["systemctl", "reload", "caddy.service"])
        restarted.append("reloaded caddy.service")
    ca = S.CADDY_CA if spec.tls == "internal" else None
    if ca is not None:
        deadline = time.monotonic() + 60
        while not ca.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    return result("tls", changed, restarted, ca=str(ca) if ca and ca.exists() else None)


# -- Matrix accounts and the services' settings ------------------------------------------------


def shared_secret(spec: S.HostSpec) -> Path:
    return (
        spec.registration_secret_file
        if spec.matrix == "existing" and spec.registration_secret_file
        else (S.REGISTRATION_SECRET)
    )


def merge_file(path: Path, managed: dict[str, Any]) -> list[str]:
    old = path.read_text(encoding="utf-8") if path.exists() else None
    text, keys = tomlmerge.merge(old, managed, header="written by provision_wg_hub; hand edits are kept")
    changed = ensure_file(path, text, 0o600, S.USER, S.USER) if old != text else []
    return [f"{path}: {', '.join(keys)}"] if keys else changed


def register(spec: S.HostSpec, localpart: str, password: str, admin: bool) -> bool:
    """True when created, False when the user already exists."""
    from meshagents.matrix.admin import register_user

    secret = shared_secret(spec).read_text(encoding="utf-8").strip()
    try:
        register_user(spec.local_homeserver, secret, localpart, password, admin=admin)
    except FnError as exc:
        if exc.code == "matrix_user_exists":
            return False
        raise
    return True


def matrix(spec: S.HostSpec, operator_key: str) -> dict[str, Any]:
    from meshagents.matrix.settings import Credentials

    changed = ensure_dir(S.STATE / "matrix", 0o700, S.USER, S.USER)
    if spec.matrix == "existing":  # the hub's user reads its copy (never a file in /root)
        changed += ensure_file(S.REGISTRATION_SECRET, shared_secret(spec).read_bytes(), 0o640, "root", S.USER)
    changed += merge_file(
        S.MATRIX_SETTINGS,
        {
            "homeserver": spec.local_homeserver,
            "server_name": spec.server_name,
            "operators": [spec.operator_id],
            "bot": spec.bot_id,
            "actor": spec.bot,
            "registration_shared_secret_file": str(S.REGISTRATION_SECRET),
        },
    )
    bot_creds = S.STATE / "matrix" / "accounts" / spec.bot / "credentials.json"
    if not bot_creds.exists():
        password = secrets.token_urlsafe(24)
        if not register(spec, spec.bot, password, admin=False):
            raise FnError(
                "matrix_user_exists",
                f"{spec.bot_id} exists but {bot_creds} is missing: restore it "
                "from a backup, or reset that account's password on the homeserver",
            )
        Credentials(spec.local_homeserver, spec.bot_id, password).save(bot_creds)
        changed.append(f"matrix account {spec.bot_id}")
    operator_password = None
    password = secrets.token_urlsafe(18)
    if register(spec, spec.operator, password, admin=True):
        operator_password = password  # handed to the operator once; the hub keeps no copy
        changed.append(f"matrix account {spec.operator_id}")
    changed += ensure_dir(S.BOT_CONFIG.parent, 0o700, S.USER, S.USER)
    changed += merge_file(
        S.BOT_CONFIG,
        {
            "hub_url": f"http://127.0.0.1:{spec.operator_port}",
            "operator_key": operator_key,
            "control_hosts": ["127.0.0.1", spec.mesh_ip],
            "control_port": spec.bot_port,
        },
    )
    changed += own_state(spec)
    return result(
        "matrix",
        changed,
        operator=spec.operator_id,
        operator_password=operator_password,
        bot=spec.bot_id,
        homeserver=spec.client_homeserver,
    )


def services(spec: S.HostSpec) -> dict[str, Any]:
    code = S.CURRENT.resolve()
    texts = units.render_all(spec, code)
    wanted = {units.unit_name(a): texts[units.unit_name(a)] for a in units.APPS}
    changed = own_state(spec)
    changed += install_units(wanted)
    changed += enable(list(wanted))
    restarted = []
    digests = service_digests()
    release_id = current_release() or ""
    for name in (units.unit_name(a) for a in units.APPS):
        action = start_or_restart(name, digests[name])
        if action:
            restarted.append(action)
        if name == "meshagents-wg_hub.service":
            wait_http(f"http://127.0.0.1:{spec.operator_port}/healthz", START_TIMEOUT, unit=name)
    health = wait_bot(spec)
    return result("services", changed, restarted, release=release_id, bot=health)


def service_digests() -> dict[str, str]:
    """What each app unit reads: its unit file, its config files and the release it runs."""
    deps = {
        "meshagents-wg_hub.service": [S.HUB_CONFIG],
        "meshagents-agents_and_robots.service": [S.BOT_CONFIG, S.MATRIX_SETTINGS],
        "meshagents-agents_dashboard.service": [],
    }
    rid = current_release() or ""
    return {name: inputs_digest([UNIT_DIR / name, *paths], rid) for name, paths in deps.items()}


def stamp_services() -> None:
    """After a restart done elsewhere (upgrade, restore): the next provision run sees nothing to do."""
    for name, digest in service_digests().items():
        (INPUTS / f"{name}.inputs").write_text(digest + "\n", encoding="utf-8")


def wait_bot(spec: S.HostSpec, timeout: float | None = None) -> dict[str, Any]:
    """The bot is up when its control API says its Matrix client is ok (approvals room made)."""
    from meshagents import hubctl

    timeout = START_TIMEOUT if timeout is None else timeout
    token = hubctl.api_token({})
    url = f"http://127.0.0.1:{spec.bot_port}/healthz"
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
                last = json.loads(resp.read() or b"{}")
                if last.get("state") == "ok":
                    return dict(last)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(1)
    raise FnError(
        "service_unhealthy",
        f"the bot did not become ok within {timeout:.0f} s: {last}"
        + journal_tail("meshagents-agents_and_robots.service"),
    )
