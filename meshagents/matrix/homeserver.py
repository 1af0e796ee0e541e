"""The embedded homeserver: Synapse as a child process, for tests and the local demo.

    hs = EmbeddedSynapse(data_dir, host="127.0.0.1", port=8448)
    hs.write_config()          # idempotent; keeps keys and secrets already written
    hs.start()                 # returns once /_matrix/client/versions answers
    user = hs.register("alice", "secret")
    hs.stop()

Production does not use this: it points the project at an existing homeserver by URL
(see docs/matrix.md). The config is written whole by us (no ``--generate-config``,
which costs ~3 s and logs to /tmp): the overrides FIELD-NOTES.md lists — one listener
on the given address, sqlite, shared-secret registration, bcrypt 4, no trusted key
servers, no presence, room version 11, every rate limit raised; and ``TUNING`` (no push
rules: no client of this server has a push gateway; no user directory, room stats or
federation sender: no client reads them, and Synapse works on them after every event).
It runs through ``synapse_main``: Synapse with its SQLite commits not fsynced one by one.
"""

from __future__ import annotations

import io
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
import yaml

from meshagents.errors import FnError
from meshagents.fsutil import write_atomic
from meshagents.matrix.admin import register_user

#: Limits high enough that tests and benchmarks never meet a 429 (nio retries 429s
#: silently, which looks like seconds of latency).
_UNLIMITED = {"per_second": 10000, "burst_count": 100000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_admin_redaction": _UNLIMITED,
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_third_party_invite": _UNLIMITED,
    "rc_key_requests": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_profile": _UNLIMITED,
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_user_directory": _UNLIMITED,
}


#: Settings for a homeserver whose clients are the project's own processes and test
#: operators, none of them with a push gateway: no push-rule evaluation per event for
#: every room member, and no unread counts in every sync (the bulk of Synapse's work per
#: message beside persisting it; bench_load). Not for a hub whose operators want phone
#: notifications (meshagents/hubhost keeps push on).
TUNING: dict[str, Any] = {
    "push": {"enabled": False},
    "caches": {"global_factor": 2.0},
    # No client here searches for users or lists rooms with their counts: Synapse would
    # otherwise update the user directory and the room stats after every event (Element
    # users need both: meshagents/hubhost keeps them on). ``enabled: false`` only empties
    # the searches; naming a process that does not exist as the directory's updater is
    # how Synapse is told that none of its own does the work.
    "user_directory": {"enabled": False},
    "update_user_directory_from_worker": "no-such-worker",
    "stats": {"enabled": False},
    # No federation (``federation_domain_whitelist: []``): an empty list of federation
    # senders spares the per-event pass that looks for remote servers in the room.
    "federation_sender_instances": [],
}

#: Extra top-level settings merged last, for a bench that compares settings (A/B in one run).
OVERRIDES: dict[str, Any] = {}


def synapse_argv(config_path: Path) -> list[str]:
    """The command that runs the embedded homeserver: Synapse through ``synapse_main``
    (its SQLite commits without an fsync each: that module says why)."""
    return [sys.executable, "-m", "meshagents.matrix.synapse_main", "-c", str(config_path)]


def synapse_config(
    data_dir: Path, host: str, port: int, server_name: str, secrets_: dict[str, str]
) -> dict[str, Any]:
    """The whole homeserver.yaml as data (pure)."""
    cfg: dict[str, Any] = {
        "server_name": server_name,
        "pid_file": str(data_dir / "homeserver.pid"),
        "public_baseurl": f"http://{host}:{port}/",
        "listeners": [
            {
                "port": port,
                "bind_addresses": [host],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(data_dir / "homeserver.db")}},
        "log_config": str(data_dir / "log.yaml"),
        "media_store_path": str(data_dir / "media_store"),
        "signing_key_path": str(data_dir / "signing.key"),
        "registration_shared_secret": secrets_["registration_shared_secret"],
        "macaroon_secret_key": secrets_["macaroon_secret_key"],
        "form_secret": secrets_["form_secret"],
        "report_stats": False,
        "enable_registration": False,
        "bcrypt_rounds": 4,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "presence": {"enabled": False},
        "default_room_version": "11",
        "enable_metrics": False,
        "url_preview_enabled": False,
        "federation_domain_whitelist": [],
    }
    cfg.update(_RATE_LIMITS)
    cfg.update(TUNING)
    cfg.update(OVERRIDES)
    return cfg


def _log_config(data_dir: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {"precise": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(data_dir / "homeserver.log"),
                "encoding": "utf8",
            }
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def _pdeathsig() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _write_private(path: Path, text: str) -> None:
    write_atomic(path, text, fsync=False)


class EmbeddedSynapse:
    """One Synapse child process bound to ``host:port`` with its state in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8008,
        server_name: str = "localhost",
        die_with_parent: bool = False,
    ):
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.server_name = server_name
        self._proc: subprocess.Popen[bytes] | None = None
        # Linux PR_SET_PDEATHSIG: Synapse gets SIGTERM when the *thread* that started it
        # ends, so a killed test run leaves no server behind. Start it from a thread that
        # lives as long as the server (the main thread).
        self.die_with_parent = die_with_parent

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "homeserver.yaml"

    @property
    def shared_secret(self) -> str:
        return self._secrets()["registration_shared_secret"]

    def _secrets(self) -> dict[str, str]:
        path = self.data_dir / "secrets.yaml"
        if path.exists():
            loaded: dict[str, str] = yaml.safe_load(path.read_text())
            return loaded
        made = {
            k: secrets.token_urlsafe(32)
            for k in ("registration_shared_secret", "macaroon_secret_key", "form_secret")
        }
        _write_private(path, yaml.safe_dump(made))
        return made

    def write_config(self) -> Path:
        """Write homeserver.yaml, the log config and (once) the signing key."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path = self.data_dir / "signing.key"
        if not key_path.exists():
            from signedjson.key import generate_signing_key, write_signing_keys

            buf = io.StringIO()
            write_signing_keys(buf, [generate_signing_key("a_" + secrets.token_hex(2))])
            _write_private(key_path, buf.getvalue())
        (self.data_dir / "log.yaml").write_text(yaml.safe_dump(_log_config(self.data_dir)))
        cfg = synapse_config(self.data_dir, self.host, self.port, self.server_name, self._secrets())
        _write_private(self.config_path, yaml.safe_dump(cfg, sort_keys=True))
        return self.config_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start Synapse and wait until it answers; raises ``homeserver_start_failed``."""
        if self.running:
            return
        if not self.config_path.exists():
            self.write_config()
        out = open(self.data_dir / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            self._proc = subprocess.Popen(
                synapse_argv(self.config_path),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                preexec_fn=_pdeathsig if self.die_with_parent else None,
            )
        finally:
            out.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise FnError(
                    "homeserver_start_failed",
                    f"synapse exited with {self._proc.returncode}; see {self.data_dir / 'stdout.log'}",
                )
            try:
                with urllib.request.urlopen(self.url + "/_matrix/client/versions", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise FnError(
            "homeserver_start_failed", f"synapse did not answer on {self.url} within {timeout:.0f}s"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait, then SIGKILL; always reaps the child."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def register(self, localpart: str, password: str, *, admin: bool = False) -> str:
        """Register a user with the shared secret; returns the full user id."""
        answer = register_user(self.url, self.shared_secret, localpart, password, admin=admin)
        return str(answer["user_id"])

    def __enter__(self) -> EmbeddedSynapse:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_local_settings(
    hs: EmbeddedSynapse, operators: list[str], bot: str | None, actor: str | None
) -> Path:
    """Point the matrix_* functions at this homeserver: settings.toml + the shared secret file."""
    from meshagents.matrix.settings import matrix_dir, settings_path

    secret = matrix_dir() / "registration_secret"
    _write_private(secret, hs.shared_secret + "\n")
    lines = [
        f'homeserver = "{hs.url}"',
        f'server_name = "{hs.server_name}"',
        "operators = [" + ", ".join(f'"{o}"' for o in operators) + "]",
        f'registration_shared_secret_file = "{secret}"',
    ]
    if bot:
        lines.append(f'bot = "{bot}"')
    if actor:
        lines.append(f'actor = "{actor}"')
    path = settings_path()
    _write_private(path, "\n".join(lines) + "\n")
    return path


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Run the embedded Synapse in the foreground (local demo).",
)
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8008, show_default=True)
@click.option("--server-name", default="localhost", show_default=True)
@click.option("--write-settings", is_flag=True, help="write $FN_STATE_DIR/matrix/settings.toml")
@click.option("--operator", "operators", multiple=True, help="operator user id (repeatable)")
@click.option("--bot", default=None, help="bot user id")
@click.option("--actor", default=None, help="account localpart the functions act as (registered if missing)")
def _command(
    data_dir: Path, host: str, port: int, server_name: str, write_settings: bool,
    operators: tuple[str, ...], bot: str | None, actor: str | None,
) -> int:  # fmt: skip
    hs = EmbeddedSynapse(
        data_dir, host=host, port=port, server_name=server_name, die_with_parent=True
    )
    # SIGTERM must unwind through `finally` too, or Synapse (its own session) outlives us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    hs.write_config()
    hs.start()
    print(f"synapse ready at {hs.url} (data in {data_dir}); Ctrl-C stops it", flush=True)
    if write_settings:
        written = write_local_settings(hs, list(operators), bot, actor)
        print(f"settings written to {written}", flush=True)
        if actor:
            from meshagents.matrix.ops import provision_account
            from meshagents.matrix.settings import account_dir, load_settings

            out = provision_account(load_settings(), actor, account_dir(actor) / "credentials.json")
            print(f"actor account {out['user_id']}: credentials in {out['credentials_path']}", flush=True)
    try:
        while hs.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        hs.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m meshagents.matrix.homeserver --data-dir D [--host H --port P]``: run the
    embedded Synapse in the foreground (local demo), optionally writing the settings."""
    try:
        prog = "python -m meshagents.matrix.homeserver"
        rv = _command.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.ClickException as exc:  # bad usage: click's message, exit 2
        exc.show()
        return int(exc.exit_code)
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
