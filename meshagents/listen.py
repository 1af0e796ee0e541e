"""Listening sockets made before a server starts, so a service can serve one app on
several addresses (mesh + loopback) and fail with a clear code when one is taken."""

from __future__ import annotations

import socket

from meshagents.errors import FnError


def bind_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A bound, listening, inheritable TCP socket on ``host:port`` (IPv4 or IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP
    # (base_events._set_nodelay), and accepted sockets inherit the listener's. With proto 0
    # uvicorn's two writes per response (head, body) met Nagle + the client's delayed ACK:
    # every kept-alive request after the first waited ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FnError("bind_failed", f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock
