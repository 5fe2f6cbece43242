"""A fault-injecting TCP proxy for the resume tests (after the Rust one in
crates/test-support/src/proxy.rs): an asyncio server on a loopback port
that forwards each accepted connection to a target and, on command, breaks
it the way a network does. :meth:`FaultProxy.cut` resets every current
connection on both sides (``SO_LINGER 0``: a TCP reset, no WebSocket
close), :meth:`FaultProxy.cut_after` does so after exactly N more bytes
from the server, or to it (mid-frame), :meth:`FaultProxy.stall` stops forwarding on
the current connections, one way or both (a half-open network), and ``refusing`` resets new
connections as they come. New connections go through after a cut.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    moving_up: asyncio.Event = field(default_factory=asyncio.Event)
    moving_down: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class FaultProxy:
    """A proxy to ``target_port`` on 127.0.0.1; use ``async with``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        """While true, new connections are reset as soon as they are accepted."""
        self.accepted = 0
        """Connections accepted (and forwarded) so far."""
        self.cuts = 0
        """Cuts done so far."""
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._cut_after: dict[bool, int] = {}  # by direction: down (True) or up
        self.port = 0

    @property
    def url(self) -> str:
        """The WebSocket URL that goes through the proxy."""
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    def cut(self) -> None:
        """Reset every current connection, both sides."""
        self.cuts += 1
        for link in list(self._links):
            self._drop(link)

    def cut_after(self, down_bytes: int, *, up: bool = False) -> None:
        """Cut once ``down_bytes`` more bytes went from the server to the
        client (with ``up``: from the client to the server)."""
        self._cut_after[not up] = down_bytes

    def stall(self, *, up: bool = True, down: bool = True) -> None:
        """Stop forwarding on every current connection (until cut): client →
        server if ``up``, server → client if ``down``."""
        for link in self._links:
            if up:
                link.moving_up.clear()
            if down:
                link.moving_down.clear()

    def _drop(self, link: _Link) -> None:
        self._links.discard(link)
        for task in link.tasks:
            task.cancel()
        _reset(link.client)
        _reset(link.server)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(writer)
            return
        self.accepted += 1
        link = _Link(writer, up_writer)
        link.moving_up.set()
        link.moving_down.set()
        self._links.add(link)
        link.tasks = [
            asyncio.ensure_future(self._pipe(link, reader, up_writer, down=False)),
            asyncio.ensure_future(self._pipe(link, up_reader, writer, down=True)),
        ]

    async def _pipe(
        self, link: _Link, source: asyncio.StreamReader, sink: asyncio.StreamWriter, down: bool
    ) -> None:
        try:
            while True:
                data = await source.read(CHUNK)
                await (link.moving_down if down else link.moving_up).wait()
                if not data:
                    # An orderly end on one side goes on as one on the other.
                    sink.close()
                    return
                left = self._cut_after.get(down)
                if left is not None:
                    if len(data) >= left:
                        sink.write(data[:left])
                        await sink.drain()
                        del self._cut_after[down]
                        self.cut()
                        return
                    self._cut_after[down] = left - len(data)
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            if link in self._links:
                self._drop(link)
