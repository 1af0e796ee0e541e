"""./fn run --host against a real OpenSSH server in a network namespace."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.host import ROOT, require_binary, require_root
from tests.testbed.sshd import SshHost

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture(scope="module")
def vps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHost]:
    require_root()
    require_binary("sshd", "ssh", "ssh-keygen", "nsenter", "ip")
    with SshHost.start(state_dir=tmp_path_factory.mktemp("remote-state")) as host:
        yield host


@pytest.fixture
def local_env(vps: SshHost, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FN_SSH_CONFIG"] = str(vps.config)
    env["FN_STATE_DIR"] = str(tmp_path / "local-state")
    env.pop("FN_CALLER", None)
    return env


def fn(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "fn"), *args], env=env, capture_output=True, text=True, timeout=300)


def last_json(text: str) -> dict[str, object]:
    line = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
    return json.loads(line)  # type: ignore[no-any-return]


def test_wg_keygen_runs_on_the_host(vps: SshHost, local_env: dict[str, str]) -> None:
    res = fn(local_env, "run", "--host", vps.alias, "wg_keygen", "--preshared")
    assert res.returncode == 0, res.stderr
    keys = json.loads(res.stdout)
    assert set(keys) == {"private_key", "public_key", "preshared_key"}
    pub = subprocess.run(["wg", "pubkey"], input=keys["private_key"], capture_output=True, text=True)
    assert pub.stdout.strip() == keys["public_key"]
    # the bundle is now on the host: a second run ships nothing and still works
    again = fn(local_env, "run", "--host", vps.alias, "wg_keygen")
    assert again.returncode == 0, again.stderr
    stats = json.loads(fn(local_env, "stats", "--json", "--recent", "5").stdout)
    hosts = {r["host"] for r in stats["recent"] if r["function_id"] == "wg_keygen"}
    assert hosts == {vps.alias}
    # the remote recorded the call in its own telemetry, with a remote caller
    remote = sqlite3.connect(vps.remote_state / "call_monitor.db")
    callers = {row[0] for row in remote.execute("SELECT caller FROM calls WHERE function_id='wg_keygen'")}
    assert callers == {"remote:cli"}


def test_unknown_function_on_the_host_exits_2(vps: SshHost, local_env: dict[str, str]) -> None:
    res = fn(local_env, "run", "--host", vps.alias, "wg_keygn")
    assert res.returncode == 2
    err = last_json(res.stderr)
    assert err["error"] == "unknown_function"
    assert err["host"] == vps.alias
    assert "wg_keygen" in err["suggestions"]  # type: ignore[operator]


def test_failing_remote_function_carries_its_code(vps: SshHost, local_env: dict[str, str]) -> None:
    # The operator's public key is pinned explicitly: the check then fails on the token itself.
    operator_pub = "A" * 43 + "="
    res = fn(
        local_env, "run", "--host", vps.alias, "enrollment_token_verify",
        "--token", "not-a-token", "--operator-key", operator_pub,
    )  # fmt: skip
    assert res.returncode == 1
    err = last_json(res.stderr)
    assert err["error"] == "remote_failed"
    assert err["remote_error"] == "token_invalid"
    assert "not-a-token" not in " ".join(
        subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    )


def test_unreachable_host(vps: SshHost, local_env: dict[str, str]) -> None:
    alias = vps.alias_with("closed", port=2222)
    res = fn(local_env, "run", "--host", alias, "wg_keygen")
    assert res.returncode == 1
    assert last_json(res.stderr)["error"] == "host_unreachable"


def test_refused_key(vps: SshHost, local_env: dict[str, str]) -> None:
    stranger = vps.new_key("stranger")  # not authorised
    alias = vps.alias_with("stranger", key=stranger)
    res = fn(local_env, "run", "--host", alias, "wg_keygen")
    assert res.returncode == 1
    assert last_json(res.stderr)["error"] == "auth_failed"


def test_remote_without_python(vps: SshHost, local_env: dict[str, str]) -> None:
    # A key whose sessions get an empty PATH: the host then "has no python3".
    key = vps.new_key("nopython", authorized_options='environment="PATH=/nonexistent"')
    alias = vps.alias_with("nopython", key=key)
    res = fn(local_env, "run", "--host", alias, "wg_keygen")
    assert res.returncode == 1
    err = last_json(res.stderr)
    assert err["error"] == "remote_python_missing"
    assert "apt-get install python3" in str(err["message"])
