"""meshagents.listen: the sockets the hub and the dashboard serve on.

The connections an asyncio server (uvicorn) accepts on a ``bind_listener`` socket must
have TCP_NODELAY: uvicorn writes a response's head and body in two sends, and without
it the body waited for the client's delayed ACK (~40 ms per kept-alive request).
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from meshagents.errors import FnError
from meshagents.listen import bind_listener

pytestmark = pytest.mark.unit


def test_the_listener_says_it_is_tcp() -> None:
    sock = bind_listener("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.type == socket.SOCK_STREAM
        assert sock.get_inheritable()
    finally:
        sock.close()


async def test_connections_asyncio_accepts_on_it_have_nodelay() -> None:
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = writer.get_extra_info("socket")
        seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(seen, 10) == 1
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_a_taken_port_is_a_clear_error() -> None:
    first = bind_listener("127.0.0.1", 0)
    try:
        with pytest.raises(FnError) as err:
            bind_listener("127.0.0.1", first.getsockname()[1])
        assert err.value.code == "bind_failed"
    finally:
        first.close()
