"""The WebSocket under a connection: opening it (bearer token, refusals
turned into typed errors), saying why it ended and whether that was a loss
(no close frame) or a close, the client's keepalive (pings, and a
connection dropped without a close frame after a silence), and ending a
detached session on a connection of its own (a client closed while
reconnecting).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .errors import ConnectError, ExecdError, RefusedError, UnauthorizedError
from .options import Keepalive

MAX_FRAME = 512 * 1024 * 1024
"""Largest frame accepted from the server (as the Rust client)."""

NOT_LISTENING = "no server listens there"
"""Said of a refused TCP connection: no server process listens, so no
session of one survives either (a resume gives up at once)."""


async def open_socket(
    url: str, token: str | None, timeout: float, ca_file: str | None = None
) -> ClientConnection:
    """Open the WebSocket to ``url``, sending ``token`` as a bearer token;
    a ``wss://`` server's certificate is checked against ``ca_file`` when
    given (a private CA), else against the system's CAs.

    The library's own keepalive is off: :class:`Pinger` does it without
    sending a close frame on a timeout (which would end the session).
    """
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    tls: dict[str, Any] = {}  # ssl= only for a private CA (ws:// takes none)
    try:
        if ca_file is not None and url.lower().startswith("wss://"):
            tls["ssl"] = ssl.create_default_context(cafile=ca_file)
    except OSError as err:
        raise ConnectError(url, f"cannot read the CA file {ca_file}: {err}") from None
    except ssl.SSLError as err:
        raise ConnectError(url, f"the CA file {ca_file} holds no usable certificate: {err}") from None
    try:
        return await ws_connect(
            url,
            additional_headers=headers,
            max_size=MAX_FRAME,
            open_timeout=timeout,
            compression=None,
            ping_interval=None,
            ping_timeout=None,
            **tls,
        )
    except InvalidStatus as err:
        status = err.response.status_code
        if status == 401:
            raise UnauthorizedError(url, token is not None) from None
        body = err.response.body.decode("utf-8", "replace").strip() if err.response.body else ""
        raise RefusedError(url, status, body or err.response.reason_phrase) from None
    except InvalidURI as err:
        raise ConnectError(url, f"not a WebSocket URL: {err}") from None
    except ConnectionRefusedError:
        raise ConnectError(
            url, f"connection refused: {NOT_LISTENING} (is execd serve running?)"
        ) from None
    except (OSError, InvalidHandshake) as err:
        raise ConnectError(url, str(err) or type(err).__name__) from None
    except asyncio.TimeoutError:
        raise ConnectError(url, f"timed out after {timeout:g} s") from None


async def end_session(
    url: str, token: str | None, timeout: float, ca_file: str | None, session: str, client_name: str
) -> bool:
    """Take ``session`` over on a new connection only to close that cleanly
    (a close frame), so the server ends the session and its processes at
    once rather than after its detach grace. True if it was ended so; false
    if no connection answered within ``timeout`` s (the grace ends it) or
    the session was already gone."""
    try:
        socket = await asyncio.wait_for(open_socket(url, token, timeout, ca_file), timeout)
    except (ExecdError, OSError, asyncio.TimeoutError):
        return False
    params = {"clientName": client_name, "binaryOutput": False, "resumeSessionId": session}
    try:
        async with asyncio.timeout(timeout):
            await socket.send(json.dumps({"id": 1, "method": "initialize", "params": params}))
            while True:  # The session's queued frames come first: skipped.
                frame = await socket.recv()
                message = json.loads(frame) if isinstance(frame, str) else None
                if isinstance(message, dict) and message.get("id") == 1 and "method" not in message:
                    break
            result = message.get("result")
            resumed = isinstance(result, dict) and result.get("sessionId") == session
            await socket.close()
            return resumed
    except (ConnectionClosed, OSError, ValueError, TimeoutError):
        abort(socket)
        return False


def was_lost(err: ConnectionClosed) -> bool:
    """Whether the connection ended without a close frame from the server."""
    return err.rcvd is None


def closed_reason(err: ConnectionClosed) -> str:
    """Why the connection ended, in words."""
    if err.rcvd is None:
        return "the connection to the server broke without a close frame"
    said = f": {err.rcvd.reason}" if err.rcvd.reason else ""
    return f"the server closed the connection (code {err.rcvd.code}{said})"


def abort(socket: ClientConnection) -> None:
    """Drop the connection at once, without a close frame (the server then
    detaches the session instead of ending it)."""
    socket.transport.abort()


class Pinger:
    """Keepalive for one socket: pings every ``interval``; when nothing was
    heard for ``timeout`` the socket is aborted (its reader then sees a loss)."""

    def __init__(self, socket: ClientConnection, keepalive: Keepalive) -> None:
        self._socket = socket
        self._keepalive = keepalive
        self.last_heard = time.monotonic()
        """When the server was last heard from (a frame or a pong)."""
        self._tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        if keepalive.interval > 0:
            self._tasks.append(loop.create_task(self._ping()))
        # Without pings of its own it cannot tell an idle server from a gone one.
        if keepalive.timeout > 0 and keepalive.interval > 0:
            self._tasks.append(loop.create_task(self._watch()))

    def heard(self) -> None:
        """Something came from the server."""
        self.last_heard = time.monotonic()

    def stop(self) -> None:
        """Stop pinging and watching."""
        for task in self._tasks:
            task.cancel()

    def _pong(self, waiter: asyncio.Future[float]) -> None:
        if not waiter.cancelled() and waiter.exception() is None:
            self.heard()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self._keepalive.interval)
            try:
                waiter = await self._socket.ping()
            except ConnectionClosed:
                return
            asyncio.ensure_future(waiter).add_done_callback(self._pong)

    async def _watch(self) -> None:
        timeout = self._keepalive.timeout
        while True:
            silent = time.monotonic() - self.last_heard
            if silent >= timeout:
                abort(self._socket)
                return
            await asyncio.sleep(min(timeout - silent, max(timeout / 4, 0.01)))
