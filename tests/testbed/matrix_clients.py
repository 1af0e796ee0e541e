"""Fixtures for the Matrix layer's integration tests: the session Synapse and a
factory of clients on our base that are always stopped at teardown."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from meshagents.matrix.client import MatrixClient
from tests.testbed.synapse import SynapseServer, synapse  # noqa: F401 - re-exported fixture

MakeClient = Callable[..., Awaitable[MatrixClient]]

#: matrix-commander lives in its own venv outside the repo (it pulls odd packages).
MC_VENV = Path(os.environ.get("MESHAGENTS_MC_VENV", "/var/cache/meshagents/mc-venv"))


@pytest.fixture(scope="session")
def matrix_commander() -> Path:
    """Path of the ``matrix-commander`` executable, installing it on first use (a
    real third-party client: PyPI ``matrix-commander`` in its own venv). A file lock
    keeps two parallel runs from installing at once."""
    exe = MC_VENV / "bin" / "matrix-commander"
    MC_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(MC_VENV.parent / ".mc-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(MC_VENV)], check=True, timeout=120)
            subprocess.run(
                [str(MC_VENV / "bin" / "pip"), "install", "-q", "matrix-commander"], check=True, timeout=900
            )
    return exe


@pytest.fixture
async def make_client(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[MakeClient]:  # noqa: F811
    """``await make_client("alice", operators=(...,))`` -> a started client of a new user.
    Pass ``user=(user_id, password)`` and ``store=path`` to reopen an existing one."""
    started: list[MatrixClient] = []

    async def make(
        prefix: str = "u",
        *,
        user: tuple[str, str] | None = None,
        store: Path | None = None,
        start: bool = True,
        **kw: object,
    ) -> MatrixClient:
        user_id, password = user or synapse.new_user(prefix)
        store_dir = store or tmp_path / f"store-{user_id[1:].split(':')[0]}"
        client = MatrixClient(synapse.client_config(user_id, password, store_dir, **kw))
        started.append(client)
        if start:
            await client.start()
        return client

    yield make
    for client in started:
        await client.stop()
