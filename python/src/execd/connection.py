"""One WebSocket connection to an execd server, below the friendly API.

:class:`Connection` opens the socket (bearer token, refusals turned into
typed errors), does the ``initialize`` handshake (asking for binary output
frames), correlates requests with responses by id, routes process
notifications to one :class:`EventChannel` per process (registered before
its ``process/start`` is sent, so early output is kept; seq order checked),
answers the server's ``exec/approve`` requests through the approval
callback and passes ``exec/decision`` notifications on. When the
connection ends, every waiting call and every open channel fails with
:class:`~execd.errors.ConnectionLostError`.

Every request goes through :meth:`Connection.call` and every process's
position is its channel's ``next_seq``: that is where session resume
(re-sending calls in flight, catching up with ``process/read afterSeq``)
and flow control (``process/ack`` as events are consumed) will attach.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, Union, cast
from urllib.parse import unquote, urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from . import _token
from ._wire import STREAMS, decode_b64, decode_binary_output
from .errors import (
    ConnectError,
    ConnectionLostError,
    ExecdError,
    ProtocolError,
    RefusedError,
    RequestTimeoutError,
    SeqGapError,
    UnauthorizedError,
    server_error,
)
from .types import (
    Answer,
    ApprovalRequest,
    Closed,
    ExecDecision,
    Exited,
    Output,
    ProcessEvent,
    ServerInfo,
)

__all__ = [
    "Connection",
    "EventChannel",
    "ApprovalCallback",
    "DecisionCallback",
    "FrameCallback",
    "DEFAULT_URL",
]

DEFAULT_URL = "ws://127.0.0.1:7878"
"""Where ``execd serve`` listens by default."""

MAX_FRAME = 512 * 1024 * 1024
"""Largest frame accepted from the server (as the Rust client)."""

ApprovalCallback = Callable[[ApprovalRequest], Union[Answer, Awaitable[Answer]]]
"""Decides an ``exec/approve`` request: ``"run"``, ``"escalate"`` or ``"deny"``."""

DecisionCallback = Callable[[ExecDecision], Union[None, Awaitable[None]]]
"""Receives every ``exec/decision`` notification, in order."""

FrameCallback = Callable[[str, Union[str, bytes]], None]
"""Sees every frame: ``("sent", text)`` or ``("received", text or bytes)`` (for tracing)."""


class EventChannel:
    """One process's events, in seq order, as they arrive.

    The reader appends; the owner takes them with :meth:`get`. A seq out of
    order or a lost connection ends the channel with an error. How the
    process ended is kept apart from the queue, so :meth:`wait_exit` works
    whether or not anyone reads the events.
    """

    def __init__(self, process_id: str) -> None:
        self.process_id = process_id
        """The process's id."""
        self.next_seq = 1
        """The seq the next event must carry."""
        self.exit: Exited | None = None
        """The ``exited`` event, once it came."""
        self.closed = False
        """Whether ``closed`` came."""
        self.failure: ExecdError | None = None
        """Why the channel ended early, if it did."""
        self._queue: asyncio.Queue[ProcessEvent | ExecdError] = asyncio.Queue()
        self._exited = asyncio.Event()
        self._closed = asyncio.Event()

    def deliver(self, event: ProcessEvent) -> None:
        """Take one event from the reader; checks its seq."""
        if self.failure is not None or self.closed:
            return
        if event.seq != self.next_seq:
            self.fail(SeqGapError(self.process_id, self.next_seq, event.seq))
            return
        self.next_seq += 1
        self._queue.put_nowait(event)
        if isinstance(event, Exited):
            self.exit = event
            self._exited.set()
        elif isinstance(event, Closed):
            self.closed = True
            self._exited.set()
            self._closed.set()

    def fail(self, error: ExecdError) -> None:
        """End the channel with ``error`` (unless it already closed)."""
        if self.failure is not None or self.closed:
            return
        self.failure = error
        self._queue.put_nowait(error)
        self._exited.set()
        self._closed.set()

    async def get(self) -> ProcessEvent:
        """The next event; raises the channel's error once the events before it are taken."""
        item = await self._queue.get()
        if isinstance(item, ExecdError):
            # Leave it for later readers too.
            self._queue.put_nowait(item)
            raise item
        return item

    async def wait_exit(self) -> Exited:
        """Wait for ``exited``; raises if the channel failed first."""
        await self._exited.wait()
        if self.exit is not None:
            return self.exit
        if self.failure is not None:
            raise self.failure
        raise ProtocolError(f"process {self.process_id} closed without an exited event")

    async def wait_closed(self) -> None:
        """Wait for ``closed``; raises if the channel failed first."""
        await self._closed.wait()
        if self.failure is not None:
            raise self.failure


def _file_uri_path(uri: object) -> str | None:
    if not isinstance(uri, str):
        return None
    if uri.startswith("/"):
        return uri
    parts = urlsplit(uri)
    if parts.scheme != "file":
        return None
    return unquote(parts.path) or None


class Connection:
    """One connection to an execd server; open it with :meth:`open`."""

    def __init__(
        self,
        socket: ClientConnection,
        target: str,
        request_timeout: float,
        on_approve: ApprovalCallback | None,
        on_decision: DecisionCallback | None,
        on_frame: FrameCallback | None = None,
    ) -> None:
        self.target = target
        """The URL connected to."""
        self.request_timeout = request_timeout
        """Seconds an ordinary call may take."""
        self.on_approve = on_approve
        """Decides ``exec/approve`` requests; without one they are refused (deny)."""
        self.on_decision = on_decision
        """Receives ``exec/decision`` notifications."""
        self.on_frame = on_frame
        """Sees every frame sent and received."""
        self.info = ServerInfo("", None, {}, None)
        """What ``initialize`` answered (set by :meth:`open`)."""
        self.closed_reason: str | None = None
        """Why the connection ended, once it has."""
        self._socket = socket
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._channels: dict[str, EventChannel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()
        self._reader = asyncio.get_running_loop().create_task(self._read_frames())

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        token: str | None = None,
        binary_output: bool = True,
        request_timeout: float = 60.0,
        open_timeout: float = 60.0,
        on_approve: ApprovalCallback | None = None,
        on_decision: DecisionCallback | None = None,
        on_frame: FrameCallback | None = None,
        client_name: str = "execd-python",
    ) -> Connection:
        """Connect to ``url`` (``ws://`` or ``wss://``) and do the handshake."""
        try:
            sent = _token.resolve(url, token)
        except _token.TokenProblem as err:
            raise ConnectError(url, str(err)) from None
        headers = {"Authorization": f"Bearer {sent}"} if sent is not None else None
        try:
            socket = await ws_connect(
                url,
                additional_headers=headers,
                max_size=MAX_FRAME,
                open_timeout=open_timeout,
                compression=None,
            )
        except InvalidStatus as err:
            status = err.response.status_code
            if status == 401:
                raise UnauthorizedError(url, sent is not None) from None
            body = err.response.body.decode("utf-8", "replace").strip() if err.response.body else ""
            raise RefusedError(url, status, body or err.response.reason_phrase) from None
        except InvalidURI as err:
            raise ConnectError(url, f"not a WebSocket URL: {err}") from None
        except (OSError, InvalidHandshake) as err:
            raise ConnectError(url, str(err) or type(err).__name__) from None
        except asyncio.TimeoutError:
            raise ConnectError(url, f"timed out after {open_timeout:g} s") from None
        connection = cls(socket, url, request_timeout, on_approve, on_decision, on_frame)
        try:
            result = await connection.call(
                "initialize",
                {"clientName": client_name, "binaryOutput": binary_output},
                timeout=open_timeout,
            )
            await connection.notify("initialized", {})
        except ConnectionLostError as err:
            await connection.close()
            raise ConnectError(url, f"the connection ended during the handshake: {err.reason}") from None
        except BaseException:
            await connection.close()
            raise
        if not isinstance(result, dict) or not isinstance(result.get("sessionId"), str):
            await connection.close()
            raise ProtocolError(f"bad initialize result: {result!r}")
        capabilities = result.get("capabilities")
        info = result.get("environmentInfo")
        connection.info = ServerInfo(
            session_id=result["sessionId"],
            server_version=result.get("serverVersion"),
            capabilities=capabilities if isinstance(capabilities, dict) else {},
            cwd=_file_uri_path(info.get("cwd")) if isinstance(info, dict) else None,
        )
        return connection

    # Calls.

    async def call(self, method: str, params: Any, timeout: float | None = None) -> Any:
        """Send a request and wait for its result (raises the server's error)."""
        if self.closed_reason is not None:
            raise ConnectionLostError(self.closed_reason)
        request_id = self._next_id
        self._next_id += 1
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            await self._send({"id": request_id, "method": method, "params": params})
            limit = self.request_timeout if timeout is None else timeout
            try:
                return await asyncio.wait_for(asyncio.shield(answer), limit)
            except asyncio.TimeoutError:
                raise RequestTimeoutError(method, limit) from None
        finally:
            self._pending.pop(request_id, None)
            if not answer.done():
                answer.cancel()

    async def notify(self, method: str, params: Any) -> None:
        """Send a notification."""
        await self._send({"method": method, "params": params})

    async def _send(self, message: dict[str, Any]) -> None:
        if self.closed_reason is not None:
            raise ConnectionLostError(self.closed_reason)
        text = json.dumps(message, separators=(",", ":"))
        try:
            async with self._send_lock:
                if self.on_frame is not None:
                    self.on_frame("sent", text)
                await self._socket.send(text)
        except ConnectionClosed as err:
            raise ConnectionLostError(self.closed_reason or _closed_reason(err)) from None

    # Process channels.

    def register(self, process_id: str) -> EventChannel:
        """Open the event channel of a process about to be started."""
        if self.closed_reason is not None:
            raise ConnectionLostError(self.closed_reason)
        if process_id in self._channels:
            raise ValueError(f"process {process_id} is already followed on this connection")
        channel = EventChannel(process_id)
        self._channels[process_id] = channel
        return channel

    def unregister(self, process_id: str) -> None:
        """Stop following a process (its start failed, or it closed)."""
        self._channels.pop(process_id, None)

    # Closing.

    async def close(self) -> None:
        """Close the connection (the server then ends this session's processes)."""
        if self.closed_reason is None:
            self._end("the client closed the connection")
        await self._socket.close()
        self._reader.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(self._reader, *self._tasks, return_exceptions=True)

    def _end(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        lost = ConnectionLostError(reason)
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(lost)
                # Waiters see it through shield; keep asyncio from warning.
                answer.exception()
        self._pending.clear()
        for channel in self._channels.values():
            channel.fail(ConnectionLostError(reason))

    # Reading.

    async def _read_frames(self) -> None:
        reason = "the server closed the connection"
        try:
            while True:
                frame = await self._socket.recv()
                if self.on_frame is not None:
                    self.on_frame("received", frame)
                if isinstance(frame, bytes):
                    self._binary(frame)
                else:
                    await self._text(frame)
        except ConnectionClosed as err:
            reason = _closed_reason(err)
        except asyncio.CancelledError:
            reason = "the client closed the connection"
            raise
        except Exception as err:  # A bug or a broken frame must not hang callers.
            reason = f"reading from the server failed: {err!r}"
        finally:
            self._end(reason)

    def _binary(self, frame: bytes) -> None:
        try:
            output = decode_binary_output(frame)
        except ProtocolError:
            return
        channel = self._channels.get(output.process_id)
        if channel is not None:
            stream = cast("Any", output.stream)
            channel.deliver(Output(output.seq, stream, output.data))

    async def _text(self, frame: str) -> None:
        try:
            message = json.loads(frame)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if isinstance(method, str):
            params = message.get("params")
            params = params if isinstance(params, dict) else {}
            if "id" in message:
                self._spawn(self._answer_request(message["id"], method, params))
            else:
                await self._notification(method, params)
            return
        request_id = message.get("id")
        answer = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if answer is None or answer.done():
            return
        error = message.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            answer.set_exception(
                server_error(
                    code if isinstance(code, int) else -32603,
                    str(error.get("message", "")),
                    error.get("data"),
                )
            )
            answer.exception()
        else:
            answer.set_result(message.get("result"))

    async def _notification(self, method: str, params: dict[str, Any]) -> None:
        if method == "exec/decision":
            if self.on_decision is not None:
                decision = _decision(params)
                if decision is not None:
                    result = self.on_decision(decision)
                    if inspect.isawaitable(result):
                        await result
            return
        if not method.startswith("process/"):
            return
        process_id = params.get("processId")
        channel = self._channels.get(process_id) if isinstance(process_id, str) else None
        if channel is None:
            return
        try:
            event = _process_event(method, params)
        except ProtocolError as err:
            channel.fail(err)
            return
        if event is not None:
            channel.deliver(event)

    async def _answer_request(self, request_id: Any, method: str, params: dict[str, Any]) -> None:
        reply: dict[str, Any]
        if method != "exec/approve" or self.on_approve is None:
            reply = {"id": request_id, "error": {"code": -32601, "message": f"client does not handle {method!r}"}}
        else:
            try:
                request = ApprovalRequest(
                    process_id=str(params["processId"]),
                    pid=int(params.get("pid", 0)),
                    path=str(params.get("path", "")),
                    argv=[str(a) for a in params.get("argv", [])],
                    cwd=str(params.get("cwd", "")),
                    escalation=bool(params.get("escalation", False)),
                )
                answer = self.on_approve(request)
                decision = await answer if inspect.isawaitable(answer) else answer
                if decision not in ("run", "escalate", "deny"):
                    raise ValueError(f"the approval callback answered {decision!r}")
                reply = {"id": request_id, "result": {"decision": decision}}
            except Exception as err:
                reply = {"id": request_id, "error": {"code": -32603, "message": f"approval failed: {err}"}}
        try:
            await self._send(reply)
        except ConnectionLostError:
            pass

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _closed_reason(err: ConnectionClosed) -> str:
    if err.rcvd is None and err.sent is None:
        return "the connection to the server broke without a close frame"
    close = err.rcvd or err.sent
    assert close is not None
    said = f": {close.reason}" if close.reason else ""
    return f"the server closed the connection (code {close.code}{said})"


def _process_event(method: str, params: dict[str, Any]) -> ProcessEvent | None:
    seq = params.get("seq")
    if not isinstance(seq, int):
        raise ProtocolError(f"{method} without an integer seq")
    if method == "process/output":
        stream = params.get("stream")
        if stream not in STREAMS:
            raise ProtocolError(f"process/output names unknown stream {stream!r}")
        return Output(seq, stream, decode_b64(params.get("chunk"), "process/output chunk"))
    if method == "process/exited":
        code = params.get("exitCode")
        if not isinstance(code, int):
            raise ProtocolError("process/exited without an integer exitCode")
        signal = params.get("signal")
        return Exited(seq, code, signal if isinstance(signal, str) else None)
    if method == "process/closed":
        return Closed(seq)
    return None


def _decision(params: dict[str, Any]) -> ExecDecision | None:
    try:
        rule = params.get("rule")
        reason = params.get("reason")
        return ExecDecision(
            process_id=str(params["processId"]),
            pid=int(params.get("pid", 0)),
            path=str(params.get("path", "")),
            argv=[str(a) for a in params.get("argv", [])],
            decision=params["decision"],
            decided_by=str(params.get("decidedBy", "")),
            rule=[str(w) for w in rule] if isinstance(rule, list) else None,
            reason=reason if isinstance(reason, str) else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def default_url() -> str:
    """``EXECD_URL``, else :data:`DEFAULT_URL`."""
    return os.environ.get("EXECD_URL") or DEFAULT_URL
