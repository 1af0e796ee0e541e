"""The built wheel carries the whole program, and an [agent] install runs with no checkout.

The wheel is built with the pinned backend, copied to a directory under /var/tmp and
installed into a fresh venv there; the commands then run as ``nobody``, with cwd ``/``,
in a mount namespace where the checkout is an empty tmpfs (the repository cannot be read).
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import stat
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary, require_root
from tests.testbed.wheel import ROOT, build_wheel, clean_env, hidden, install_venv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def agent_venv(wheel: Path) -> Iterator[Path]:
    require_root()
    require_binary("unshare", "setpriv")
    target = Path("/var/tmp") / f"pkg-inst-{secrets.token_hex(4)}"
    try:
        yield install_venv(wheel, target, extra="agent")
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _source_files() -> set[str]:
    out = set()
    for path in (ROOT / "meshagents").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".tmp"):
            out.add(path.relative_to(ROOT).as_posix())
    return out


def test_the_wheel_carries_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = {n for n in z.namelist() if not n.startswith("meshagents-")}
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        metadata = next(z.read(n) for n in z.namelist() if n.endswith(".dist-info/METADATA")).decode()
    missing = sorted(_source_files() - names)
    assert missing == [], f"in the source tree, not in the wheel: {missing}"
    # one import root: nothing else lands in site-packages
    assert {n.split("/")[0] for n in names} == {"meshagents"}
    for data in ("meshagents/registry.toml", "meshagents/apps/wg_hub/profiles/default.json",
                 "meshagents/apps/agents_dashboard/templates/base.html", "meshagents/pipelines/lib.sh"):
        assert data in names  # fmt: skip
    for pipe in ("enroll_device", "provision_wg_hub", "reissue_manifest", "sign_pending_manifests"):
        assert modes[f"meshagents/pipelines/{pipe}"] & stat.S_IXUSR, f"{pipe} lost its executable bit"
    assert "License-Expression: MIT" in metadata
    assert "Provides-Extra: agent" in metadata


def _as_nobody(venv: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--reset-env",
            str(venv / "bin/meshagents"), *args]  # fmt: skip
    return subprocess.run(
        hidden(ROOT, argv), cwd="/", env=clean_env(FN_STATE_DIR=str(state), HOME=str(state)),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def nobody_state(agent_venv: Path) -> Iterator[Path]:
    state = agent_venv.parent / f"state-{secrets.token_hex(3)}"
    state.mkdir(mode=0o700)
    shutil.chown(state, "nobody", "nogroup")
    yield state
    shutil.rmtree(state, ignore_errors=True)


def test_the_installed_command_runs_without_the_checkout(agent_venv: Path, nobody_state: Path) -> None:
    # the checkout really is out of reach in there
    peek = subprocess.run(hidden(ROOT, ["ls", "-A", str(ROOT)]), capture_output=True, text=True, check=False)
    assert peek.returncode == 0 and peek.stdout.strip() == ""

    ver = _as_nobody(agent_venv, nobody_state, "--version")
    assert ver.returncode == 0, ver.stderr
    assert ver.stdout.startswith("meshagents 0.1.0 (catalog sha256:") and "missing" not in ver.stdout

    listed = _as_nobody(agent_venv, nobody_state, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    ids = {e["id"] for e in json.loads(listed.stdout)}
    assert {"wg_keygen", "enrollment_submit", "device_key_init"} <= ids

    ran = _as_nobody(agent_venv, nobody_state, "run", "--json", "wg_keygen")
    assert ran.returncode == 0, ran.stderr
    keys = json.loads(ran.stdout)
    assert len(base64.b64decode(keys["public_key"])) == 32

    helped = _as_nobody(agent_venv, nobody_state, "app", "device_agent", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--config" in helped.stdout


def test_checkout_commands_and_missing_extras_fail_with_a_code(agent_venv: Path, nobody_state: Path) -> None:
    for cmd in (["doctor"], ["index", "--check"], ["test"], ["bench"], ["dist"]):
        out = _as_nobody(agent_venv, nobody_state, *cmd)
        assert out.returncode == 1, (cmd, out.stdout, out.stderr)
        assert json.loads(out.stderr.strip().splitlines()[-1])["error"] == "needs_checkout", out.stderr
        assert "Traceback" not in out.stderr
    # [agent] has no docker: the container functions say which package is missing
    out = _as_nobody(agent_venv, nobody_state, "run", "docker_container_list")
    err = json.loads(out.stderr.strip().splitlines()[-1])
    assert out.returncode == 1 and err["error"] == "missing_dependency" and err["module"] == "docker"
