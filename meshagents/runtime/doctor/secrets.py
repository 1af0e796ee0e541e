"""`secrets`: no private key material in tracked files.

Finds PEM/OpenSSH/PGP private key blocks, wg-quick ``PrivateKey = <base64>`` lines
holding a real 32-byte key, and ``private_key``/``seed`` fields with a 32-byte value
(base64 or hex). Placeholders such as ``PrivateKey = <device key>`` pass. Paths in
``[tool.meshagents.doctor] secrets_allow`` (fake keys for the doctor's own tests)
are skipped.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

from meshagents.runtime.doctor.base import Problem

PEM_RE = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----")
WG_RE = re.compile(r"^\s*PrivateKey\s*=\s*([A-Za-z0-9+/]{42,44}={0,2})\s*$", re.MULTILINE)
FIELD_RE = re.compile(
    r"""["']?(?:private_key|privatekey|secret_key|signing_key|seed)["']?\s*[:=]\s*["']"""
    r"""([A-Za-z0-9+/]{43}=|[0-9a-fA-F]{64})["']""",
    re.IGNORECASE,
)
SKIP_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".ico", ".tar", ".gz", ".whl", ".db", ".sqlite"}


def _is_key32(text: str) -> bool:
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return True
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def scan_text(text: str) -> list[tuple[int, str]]:
    """(line number, what) for each secret-looking thing in ``text``."""
    hits: list[tuple[int, str]] = []

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    for m in PEM_RE.finditer(text):
        hits.append((line_of(m.start()), f"{m.group(1) or ''}PRIVATE KEY block".strip()))
    for m in WG_RE.finditer(text):
        if _is_key32(m.group(1)):
            hits.append((line_of(m.start()), "WireGuard PrivateKey"))
    for m in FIELD_RE.finditer(text):
        if _is_key32(m.group(1)):
            hits.append((line_of(m.start()), "private key field"))
    return sorted(set(hits))


def tracked_files(root: Path) -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True,
            capture_output=True,
        ).stdout
        return [root / p for p in out.decode().split("\0") if p]
    except (subprocess.CalledProcessError, FileNotFoundError):
        return [
            p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts and ".venv" not in p.parts
        ]


def allowlist(root: Path) -> list[str]:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return []
    allowed = data.get("tool", {}).get("meshagents", {}).get("doctor", {}).get("secrets_allow", [])
    return [str(a) for a in allowed]


def check(root: Path) -> list[Problem]:
    allowed = allowlist(root)
    problems: list[Problem] = []
    for path in tracked_files(root):
        rel = path.relative_to(root).as_posix()
        if path.suffix in SKIP_SUFFIXES or not path.is_file():
            continue
        if any(fnmatch.fnmatch(rel, pat) for pat in allowed):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for line, what in scan_text(text):
            problems.append(Problem("secrets", "error", f"{rel}:{line}", f"looks like a committed {what}"))
    return problems
