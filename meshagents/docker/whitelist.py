"""The per-container executable whitelist: a pure check, no I/O.

The whitelist comes from the operator-signed manifest. An argv is allowed when its
first element is *exactly* one of the entries: a bare name (``ls``, looked up on the
container's PATH) or an absolute path (``/bin/ls``). No basename matching and no
globbing, so ``/tmp/ls`` never passes for ``ls`` and ``./ls`` never passes at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshagents.errors import FnError

#: Executables that run arbitrary other programs: whitelisting one allows everything.
ANYTHING_RUNNERS = frozenset(
    {
        "sh", "bash", "dash", "ash", "zsh", "ksh", "busybox", "env", "xargs", "nohup",
        "nice", "timeout", "chroot", "su", "sudo", "python", "python3", "perl", "ruby",
        "node", "awk", "find", "nsenter", "setsid", "stdbuf",
    }
)  # fmt: skip

MAX_ARGS = 256
MAX_ARG_BYTES = 64 * 1024


def _valid_entry(entry: str) -> bool:
    if not entry or "\x00" in entry or entry != entry.strip():
        return False
    if entry.startswith("/"):
        parts = entry.split("/")[1:]
        return all(p not in ("", ".", "..") for p in parts)
    return "/" not in entry


def check_argv(argv: Sequence[str], whitelist: Sequence[str]) -> str:
    """Return the executable of ``argv`` if the whitelist allows it; else ``rejected_args``."""
    if isinstance(argv, str):
        raise FnError("rejected_args", "argv must be a list of strings, not one string")
    if not argv:
        raise FnError("rejected_args", "empty command")
    if len(argv) > MAX_ARGS:
        raise FnError("rejected_args", f"more than {MAX_ARGS} arguments")
    if any(not isinstance(a, str) or "\x00" in a for a in argv):
        raise FnError("rejected_args", "arguments must be strings without NUL bytes")
    if sum(len(a.encode()) for a in argv) > MAX_ARG_BYTES:
        raise FnError("rejected_args", f"arguments longer than {MAX_ARG_BYTES} bytes")
    exe = argv[0]
    allowed = {e for e in whitelist if _valid_entry(e)}
    if not _valid_entry(exe) or exe not in allowed:
        raise FnError(
            "rejected_args",
            f"executable {exe!r} is not in the container's whitelist",
            executable=exe,
            whitelist=sorted(allowed),
        )
    return exe


def invalid_entries(whitelist: Sequence[str]) -> list[str]:
    """Entries that can never match (relative paths, '..', blanks, NUL)."""
    return [e for e in whitelist if not _valid_entry(e)]


def whitelist_risks(whitelist: Sequence[str]) -> list[str]:
    """Human warnings for entries that make the whitelist meaningless."""
    out = []
    for entry in whitelist:
        base = entry.rsplit("/", 1)[-1]
        if base in ANYTHING_RUNNERS:
            out.append(f"{entry!r} can run any other program: whitelisting it allows everything")
    for entry in invalid_entries(whitelist):
        out.append(f"{entry!r} is not a bare name or a clean absolute path and never matches")
    return out
