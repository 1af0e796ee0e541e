"""Loopback port forwards from the root namespace into the hub namespace.

    python -m meshagents.testbed.rig.forward --listen FD=HOST:PORT [--listen FD=HOST:PORT ...]

The rig binds the listening sockets on 127.0.0.1 in the root namespace, passes them
to this process, and starts it inside the hub namespace (``nsenter --net``): accepted
connections are root-namespace sockets, the connections it opens are made in the hub
namespace. So the operator's Element and ``./fn chat`` reach Synapse and the
dashboard at ``http://127.0.0.1:<port>`` while the root namespace gets no address or
route, and the hub's firewall sees them as loopback traffic. Stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys

import click

from meshagents.runtime.appcli import CONTEXT, run_app

CHUNK = 65536


def parse_listen(spec: str) -> tuple[int, str, int]:
    """``FD=HOST:PORT`` -> (fd, host, port) (pure)."""
    fd_text, _, target = spec.partition("=")
    host, _, port_text = target.rpartition(":")
    if not fd_text.isdigit() or not host or not port_text.isdigit():
        raise ValueError(f"--listen wants FD=HOST:PORT, got {spec!r}")
    return int(fd_text), host, int(port_text)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


def _handler(host: str, port: int):  # type: ignore[no-untyped-def]
    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection(host, port)
        except OSError:
            c_writer.close()
            return
        try:
            await asyncio.gather(_pipe(c_reader, u_writer), _pipe(u_reader, c_writer))
        finally:
            for w in (u_writer, c_writer):
                with contextlib.suppress(Exception):
                    w.close()

    return handle


async def serve(specs: list[tuple[int, str, int]]) -> None:
    servers = []
    for fd, host, port in specs:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        servers.append(await asyncio.start_server(_handler(host, port), sock=sock))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


@click.command(context_settings=CONTEXT, help="Loopback port forwards into the hub namespace.")
@click.option("--listen", "listens", multiple=True, required=True, metavar="FD=HOST:PORT")
def _command(listens: tuple[str, ...]) -> int:
    try:
        specs = [parse_listen(s) for s in listens]
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    asyncio.run(serve(specs))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_app(_command, argv, "python -m meshagents.testbed.rig.forward")


if __name__ == "__main__":
    sys.exit(main())
