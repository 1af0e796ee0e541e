"""Listening sockets made before a server starts, so a service can serve one app on
several addresses (mesh + loopback) and fail with a clear code when one is taken."""

from __future__ import annotations

import socket

from meshagents.errors import FnError


def bind_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A bound, listening, inheritable TCP socket on ``host:port`` (IPv4 or IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FnError("bind_failed", f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock
