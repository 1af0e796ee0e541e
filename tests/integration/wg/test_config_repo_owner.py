"""The config repository of a provisioned hub belongs to the service user; root running git
there (a root-run ``fn run wg_peer_add``, a provisioning re-run) gives back what git wrote:
the index it refreshed and new objects with their directories. A root-owned ``.git/index``
made a re-provisioned VM hub report "changed" (test_vm_hub's re-run check); a root-owned
objects directory would refuse the service's own next commit. Real git, as root."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from meshagents.wg.gitdir import ConfigRepo
from tests.testbed.host import require_binary, require_root

pytestmark = pytest.mark.integration


def _owners(root: Path) -> set[int]:
    out = {root.lstat().st_uid}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            out.add(os.lstat(os.path.join(dirpath, name)).st_uid)
    return out


def test_root_run_git_leaves_the_repository_to_its_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_root()
    require_binary("git")
    nobody = pwd.getpwnam("nobody")
    repo_dir = tmp_path / "wg"
    # what provisioning adds to root's global git config for /etc/wireguard (git_safe_root),
    # here for this process only
    for key, value in (("GIT_CONFIG_COUNT", "1"), ("GIT_CONFIG_KEY_0", "safe.directory"),
                       ("GIT_CONFIG_VALUE_0", str(repo_dir))):
        monkeypatch.setenv(key, value)
    repo = ConfigRepo(repo_dir)
    repo.ensure()
    repo.write("wg0.conf", "[Interface]\n")
    repo.commit(["wg0.conf"], "first")
    for dirpath, dirnames, filenames in os.walk(repo_dir):  # as provisioning hands it over
        for name in (".", *dirnames, *filenames):
            os.lchown(dirpath if name == "." else os.path.join(dirpath, name), nobody.pw_uid, nobody.pw_gid)
    # the chown made the index's stat data stale: the next root-run git refreshes and rewrites it
    repo.commit(["wg0.conf"], "nothing changed")
    repo.write("wg0.conf", "[Interface]\n# a peer\n")
    assert repo.commit(["wg0.conf"], "a change") is not None  # new objects, maybe new directories
    assert _owners(repo_dir / ".git") == {nobody.pw_uid}
    assert repo.uncommitted(["wg0.conf"]) == []


def test_a_repository_root_owns_stays_as_it_is(tmp_path: Path) -> None:
    require_root()
    require_binary("git")
    repo = ConfigRepo(tmp_path / "wg")
    repo.ensure()
    repo.write("wg0.conf", "[Interface]\n")
    assert repo.commit(["wg0.conf"], "first") is not None
    assert _owners(tmp_path / "wg" / ".git") == {0}
