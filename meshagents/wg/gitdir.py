"""The config directory as a git repository: every change committed, manual edits visible.

The repository holds the wg-quick config (with the hub's private key, as wg-quick
wants) and the nftables rules: it is local, 0700, and must never be pushed anywhere.
The ledger and lock files are ignored.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from meshagents.errors import FnError
from meshagents.fsutil import write_atomic

GITIGNORE = ".meshagents/\n*.lock\n*.tmp\n"
GIT_IDENTITY = [
    "-c",
    "user.name=meshagents",
    "-c",
    "user.email=meshagents@localhost",
    "-c",
    "commit.gpgsign=false",
]


class ConfigRepo:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # GIT_OPTIONAL_LOCKS=0: a status or diff never rewrites the index (a re-run changes no file)
        env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
        try:
            proc = subprocess.run(
                ["git", "-C", str(self.dir), *GIT_IDENTITY, *args], capture_output=True, text=True, env=env
            )
        except FileNotFoundError as exc:
            raise FnError("missing_binary", "git is not installed") from exc
        if os.geteuid() == 0:
            self._give_back()
        if check and proc.returncode != 0:
            raise FnError("git_failed", f"git {args[0]} in {self.dir}: {proc.stderr.strip()[:300]}")
        return proc

    def _give_back(self) -> None:
        """Root ran git in a repository another user owns (a root-run catalog call or a
        provisioning step on a provisioned hub, whose /etc/wireguard is the service's): what
        git wrote there (the index it refreshed, new objects and their directories) goes to
        that user, as SQLite does for the journals it makes as root. Otherwise the service's
        own next commit could not write into a root-owned objects directory, and a re-run of
        the provisioning would find files to give back (it changes nothing when nothing
        changed)."""
        try:
            st = os.stat(self.dir)
        except OSError:
            return
        if st.st_uid == 0:
            return
        for dirpath, dirnames, filenames in os.walk(self.dir / ".git"):
            for name in (".", *dirnames, *filenames):
                path = dirpath if name == "." else os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    own = os.lstat(path)
                    if (own.st_uid, own.st_gid) != (st.st_uid, st.st_gid):
                        os.lchown(path, st.st_uid, st.st_gid)

    def is_repo(self) -> bool:
        return (self.dir / ".git").exists()

    def ensure(self) -> bool:
        """Make the directory (0700) and the repository; True if anything was created."""
        created = False
        if not self.dir.exists():
            self.dir.mkdir(parents=True, mode=0o700)
            created = True
        if not self.is_repo():
            self.git("init", "-q")
            (self.dir / ".git").chmod(0o700)
            created = True
        gi = self.dir / ".gitignore"
        if not gi.exists():
            gi.write_text(GITIGNORE, encoding="utf-8")
            self.commit([".gitignore"], "meshagents: ignore ledger and locks")
            created = True
        return created

    def write(self, name: str, text: str, mode: int = 0o600) -> bool:
        """Write ``name`` atomically if its content differs; True if it changed."""
        path = self.dir / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            if path.stat().st_mode & 0o777 != mode:
                path.chmod(mode)
            return False
        # keep_owner: on a provisioned hub the interface's directory is the service user's, and a
        # root-run catalog call (fn run wg_peer_add) must not leave it a file it cannot read
        write_atomic(path, text, mode=mode, keep_owner=True)
        return True

    def commit(self, names: list[str], message: str) -> str | None:
        """Commit ``names`` if they changed; the new commit id, or None when nothing changed.

        One ``git commit -- paths`` for tracked files (a fork of a big process costs
        ~10 ms here, and peers are added by the hundred); ``git add`` only for new ones.
        """
        proc = self.git("commit", "-q", "-m", message, "--", *names, check=False)
        if proc.returncode != 0:
            err = proc.stderr + proc.stdout
            if "did not match any file" not in err and "untracked" not in err:
                if self.git("diff", "HEAD", "--quiet", "--", *names, check=False).returncode == 0:
                    return None  # nothing to commit
                raise FnError("git_failed", f"git commit in {self.dir}: {err.strip()[:300]}")
            self.git("add", "--", *names)
            if self.git("diff", "--cached", "--quiet", "--", *names, check=False).returncode == 0:
                return None
            self.git("commit", "-q", "-m", message, "--", *names)
        return self.head()

    def head(self) -> str | None:
        """HEAD's commit id, read from the files (no fork), falling back to rev-parse."""
        git = self.dir / ".git"
        try:
            ref = (git / "HEAD").read_text(encoding="utf-8").strip()
            if ref.startswith("ref: "):
                return (git / ref[5:]).read_text(encoding="utf-8").strip()
            return ref
        except OSError:
            proc = self.git("rev-parse", "HEAD", check=False)
            return proc.stdout.strip() if proc.returncode == 0 else None

    def uncommitted(self, names: list[str]) -> list[str]:
        """Files among ``names`` that differ from the last commit (``git status`` lines)."""
        if not self.is_repo():
            return []
        proc = self.git("status", "--porcelain", "--", *names)
        return [line for line in proc.stdout.splitlines() if line.strip()]

    def diff(self, names: list[str]) -> str:
        return self.git("diff", "HEAD", "--", *names, check=False).stdout
