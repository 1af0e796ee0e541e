"""SQLite connections for the trust stores: WAL, ``synchronous=FULL``, explicit transactions.

``connect(path)`` opens (creating 0600) a database whose commits are durable on
return: in WAL mode with ``synchronous=FULL`` SQLite fsyncs the log at each commit.
``isolation_level=None`` so that callers open transactions themselves with
``BEGIN IMMEDIATE`` (one writer at a time, across processes, no upgrade deadlock).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
