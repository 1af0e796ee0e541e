"""A real Synapse for the whole test session, on a free loopback port in a temp dir.

Use it from any domain's conftest.py::

    from tests.testbed.synapse import synapse  # noqa: F401  (re-exported fixture)

    async def test_x(synapse: SynapseServer) -> None:
        alice, pw = synapse.new_user("alice")            # "@alice-<run>-<n>:localhost"
        cfg = synapse.client_config(alice, pw, tmp_path / "alice")  # a ClientConfig

One Synapse per session (start ~3 s): every user name carries the run's suffix and a
counter, so tests share the server without seeing each other's users, and parallel
runs on the same machine never collide (each has its own port and directory). It is
stopped and its directory removed at the end of the session, even on failure.
``synapse.restart()`` / ``synapse.stop()`` / ``synapse.start()`` are there for
outage tests; they keep the same port and data. Call them from the main thread: the
server gets SIGTERM when the thread that started it ends, so a killed run leaves none.
``synapse.configure_state(state_dir, operators=[...])`` points the matrix_* functions
of a state dir at this server.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.matrix.client import ClientConfig
from meshagents.matrix.homeserver import EmbeddedSynapse


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SynapseServer:
    """The session's homeserver plus helpers to make per-run users."""

    def __init__(self, hs: EmbeddedSynapse, suffix: str) -> None:
        self.hs = hs
        self.suffix = suffix
        self._counter = itertools.count(1)

    @property
    def url(self) -> str:
        return self.hs.url

    @property
    def server_name(self) -> str:
        return self.hs.server_name

    @property
    def shared_secret(self) -> str:
        return self.hs.shared_secret

    def unique(self, prefix: str) -> str:
        """``<prefix>-<run suffix>-<n>``: a name no other test or run uses."""
        return f"{prefix}-{self.suffix}-{next(self._counter)}"

    def new_user(self, prefix: str, *, admin: bool = False) -> tuple[str, str]:
        """Register a fresh user; returns (user id, password)."""
        password = secrets.token_urlsafe(16)
        return self.hs.register(self.unique(prefix), password, admin=admin), password

    def client_config(self, user_id: str, password: str, store_dir: Path, **kw: object) -> ClientConfig:
        """A ClientConfig for this server with fast backoff (tests wait less)."""
        kw.setdefault("backoff_max", 1.0)
        kw.setdefault("sync_timeout_ms", 5_000)
        return ClientConfig(
            homeserver=self.url,
            user_id=user_id,
            password=password,
            store_dir=store_dir,
            **kw,  # type: ignore[arg-type]
        )

    def configure_state(self, state_dir: Path, *, operators: list[str], actor: str | None = None) -> str:
        """Point the matrix_* functions of ``state_dir`` (an FN_STATE_DIR) at this server:
        write ``matrix/settings.toml`` and the shared-secret file, and register the actor
        account (``accounts/<actor>/credentials.json``), which is also the bot. Returns the
        actor's user id. Call it with FN_STATE_DIR set to ``state_dir``."""
        from meshagents.matrix.ops import provision_account
        from meshagents.matrix.settings import account_dir, load_settings

        actor = actor or self.unique("bot")
        matrix = state_dir / "matrix"
        matrix.mkdir(parents=True, exist_ok=True, mode=0o700)
        secret = matrix / "registration_secret"
        secret.write_text(self.shared_secret)
        secret.chmod(0o600)
        ops = ", ".join(f'"{o}"' for o in operators)
        (matrix / "settings.toml").write_text(
            f'homeserver = "{self.url}"\nserver_name = "{self.server_name}"\noperators = [{ops}]\n'
            f'bot = "@{actor}:{self.server_name}"\nactor = "{actor}"\n'
            f'registration_shared_secret_file = "{secret}"\n'
        )
        out = provision_account(load_settings(), actor, account_dir(actor) / "credentials.json")
        return str(out["user_id"])

    def stop(self) -> None:
        self.hs.stop()

    def start(self) -> None:
        """Start it again; from the main thread only (not ``asyncio.to_thread``): the
        server dies with the thread that started it (see ``die_with_parent``)."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("start the session Synapse from the main thread")
        self.hs.start()

    def restart(self) -> None:
        self.hs.stop()
        self.start()


@pytest.fixture(scope="session")
def synapse() -> Iterator[SynapseServer]:
    """One Synapse for the session (see the module docstring)."""
    suffix = secrets.token_hex(3)
    root = Path(tempfile.mkdtemp(prefix=f"meshagents-synapse-{suffix}-"))
    hs: EmbeddedSynapse | None = None
    try:
        last: FnError | None = None
        for _ in range(3):  # a free port can be taken between probe and bind
            hs = EmbeddedSynapse(root / "hs", port=free_port(), die_with_parent=True)
            hs.write_config()
            try:
                hs.start()
                break
            except FnError as exc:
                last, hs = exc, None
        if hs is None:
            raise RuntimeError(f"synapse did not start: {last}")
        yield SynapseServer(hs, suffix)
    finally:
        if hs is not None:
            hs.stop()
        shutil.rmtree(root, ignore_errors=True)
