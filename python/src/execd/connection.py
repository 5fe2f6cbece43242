"""One session with an execd server over WebSocket, below the friendly API.

:class:`Connection` opens the socket and does the ``initialize`` handshake
(asking for binary output frames), correlates requests with responses by
id, routes process notifications to one
:class:`~execd.channel.EventChannel` per process (registered before its
``process/start`` is sent, so early output is kept), answers the server's
``exec/approve`` and ``network/approve`` requests through the approval
callbacks, passes ``exec/decision`` and ``network/decision`` notifications
on, and queues each ``fs/changed`` batch for its watch.

A connection lost without a close frame (a reset, EOF, or nothing heard for
the keepalive timeout) does not end the session: with a
:class:`~execd.options.ReconnectPolicy` (the default) the connection is
resumed with ``initialize {resumeSessionId}`` on a new socket, the calls in
flight that are safe to repeat are sent again (the others fail with
:class:`~execd.errors.CallInterruptedError`), and every open channel
catches up with ``process/read afterSeq``, merged with the live events by
seq. A close (by either side), or a resume that fails, ends the session:
every waiting call and open channel fails with
:class:`~execd.errors.ConnectionLostError` (or its subclasses
:class:`~execd.errors.ResumeFailedError` and
:class:`~execd.errors.SessionExpiredError`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from . import _decode, _socket, _token, network
from ._dispatch import Dispatch, StreamItem
from .channel import EventChannel
from .errors import (
    CallInterruptedError,
    ConnectError,
    ConnectionLostError,
    ExecdError,
    InvalidRequestError,
    ProtocolError,
    RequestTimeoutError,
    ResumeFailedError,
    ServerError,
    SessionExpiredError,
    UnauthorizedError,
    server_error,
)
from .options import Keepalive, ReconnectPolicy, resend_safe
from .types import Answer, ApprovalRequest, ExecDecision, ServerInfo

__all__ = [
    "Connection",
    "LinkState",
    "ApprovalCallback",
    "DecisionCallback",
    "FrameCallback",
    "DEFAULT_URL",
]

DEFAULT_URL = "ws://127.0.0.1:7878"
"""Where ``execd serve`` listens by default."""

ApprovalCallback = Callable[[ApprovalRequest], Union[Answer, Awaitable[Answer]]]
"""Decides an ``exec/approve`` request: ``"run"``, ``"escalate"`` or ``"deny"``."""

DecisionCallback = Callable[[ExecDecision], Union[None, Awaitable[None]]]
"""Receives every ``exec/decision`` notification, in order."""

FrameCallback = Callable[[str, Union[str, bytes]], None]
"""Sees every frame: ``("sent", text)`` or ``("received", text or bytes)`` (for tracing)."""

LinkState = Literal["connected", "reconnecting", "closed"]
"""The state of the connection under a session."""


@dataclass
class _Call:
    """A request waiting for its answer, kept to send again after a resume."""

    frame: str
    method: str
    resend: bool
    answer: asyncio.Future[Any]
    sent: bool = False


@dataclass(frozen=True)
class _Ended:
    """How one socket's reading ended."""

    lost: bool
    reason: str


class _Gone(Exception):
    """A resume attempt found that the session is over."""

    def __init__(self, error: ResumeFailedError) -> None:
        self.error = error


class Connection(Dispatch):
    """A session with an execd server; open it with :meth:`open`."""

    def __init__(
        self,
        socket: ClientConnection,
        target: str,
        token: str | None,
        request_timeout: float,
        on_approve: ApprovalCallback | None,
        on_decision: DecisionCallback | None,
        on_frame: FrameCallback | None = None,
        *,
        reconnect: ReconnectPolicy | None = None,
        keepalive: Keepalive | None = None,
        binary_output: bool = True,
        client_name: str = "execd-python",
        ca_file: str | None = None,
        on_network_approve: network.NetworkApprovalCallback | None = None,
        on_network_decision: network.NetworkDecisionCallback | None = None,
    ) -> None:
        self.target = target
        """The URL connected to."""
        self.request_timeout = request_timeout
        """Seconds an ordinary call may take (time spent reconnecting does not count)."""
        self.on_approve = on_approve
        """Decides ``exec/approve`` requests; without one they are refused (deny)."""
        self.on_decision = on_decision
        """Receives ``exec/decision`` notifications."""
        self.on_network_approve = on_network_approve
        """Decides ``network/approve`` requests; without one they are refused (deny)."""
        self.on_network_decision = on_network_decision
        """Receives ``network/decision`` notifications."""
        self.on_frame = on_frame
        """Sees every frame sent and received."""
        self.reconnect = reconnect
        """How a lost connection is resumed; ``None``: a loss ends the session."""
        self.keepalive = keepalive or Keepalive(0, 0)
        """Pings, and the silence after which the connection counts as lost."""
        self.info = ServerInfo("", None, {}, None)
        """What ``initialize`` answered (set by :meth:`open`)."""
        self.closed_reason: str | None = None
        """Why the session ended, once it has."""
        self.state: LinkState = "connected"
        """``connected``, ``reconnecting`` (calls wait) or ``closed``."""
        self.resumes = 0
        """How many times the session was resumed on a new connection."""
        self._token = token
        self._ca_file = ca_file
        self._binary_output = binary_output
        self._client_name = client_name
        self._socket: ClientConnection | None = socket
        self._next_id = 1
        self._pending: dict[int, _Call] = {}
        self._unsent_replies: list[str] = []
        self._deciding: set[str] = set()
        self._answered: OrderedDict[str, str] = OrderedDict()
        self._channels: dict[str, EventChannel] = {}
        self._watches: dict[str, asyncio.Queue[dict[str, Any] | ConnectionLostError]] = {}
        self._streams: dict[int, asyncio.Queue[StreamItem]] = {}
        self._next_stream = 1
        self._tasks: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()
        self._settled = asyncio.Event()
        self._settled.set()
        self._closing = False
        self._ended: ConnectionLostError | None = None
        self._driver = asyncio.get_running_loop().create_task(self._drive(socket))

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
        reconnect: ReconnectPolicy | None = None,
        keepalive: Keepalive | None = None,
        ca_file: str | None = None,
        on_network_approve: network.NetworkApprovalCallback | None = None,
        on_network_decision: network.NetworkDecisionCallback | None = None,
    ) -> Connection:
        """Connect to ``url`` (``ws://`` or ``wss://``; ``ca_file`` for a private CA) and do the handshake."""
        try:
            sent = _token.resolve(url, token)
        except _token.TokenProblem as err:
            raise ConnectError(url, str(err)) from None
        socket = await _socket.open_socket(url, sent, open_timeout, ca_file)
        connection = cls(
            socket,
            url,
            sent,
            request_timeout,
            on_approve,
            on_decision,
            on_frame,
            reconnect=reconnect,
            keepalive=keepalive,
            binary_output=binary_output,
            client_name=client_name,
            ca_file=ca_file,
            on_network_approve=on_network_approve,
            on_network_decision=on_network_decision,
        )
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
            cwd=_decode.file_uri_path(info.get("cwd")) if isinstance(info, dict) else None,
        )
        return connection

    # Calls.

    async def call(self, method: str, params: Any, timeout: float | None = None) -> Any:
        """Send a request and wait for its result (raises the server's error).

        While the connection is being resumed the call waits; it is sent on
        the new connection (or, if it was already sent and is not safe to
        repeat, fails with :class:`~execd.CallInterruptedError`).
        """
        if self._ended is not None:
            raise self._ended
        request_id = self._next_id
        self._next_id += 1
        frame = json.dumps({"id": request_id, "method": method, "params": params}, separators=(",", ":"))
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        call = _Call(frame, method, resend_safe(method, params), answer)
        self._pending[request_id] = call
        try:
            await self._transmit(call)
            limit = self.request_timeout if timeout is None else timeout
            while True:
                done, _ = await asyncio.wait({answer}, timeout=limit)
                if done:
                    return answer.result()
                if self.state == "reconnecting":
                    # Time spent reconnecting does not count.
                    await self._settled.wait()
                    continue
                raise RequestTimeoutError(method, limit)
        finally:
            self._pending.pop(request_id, None)
            if not answer.done():
                answer.cancel()

    async def notify(self, method: str, params: Any) -> None:
        """Send a notification (dropped while reconnecting)."""
        await self._send_text(json.dumps({"method": method, "params": params}, separators=(",", ":")))

    async def _transmit(self, call: _Call) -> None:
        """Send ``call`` on the current connection, if there is one; a send
        that fails leaves it pending for the resume (or the end)."""
        if self._socket is None:
            return
        call.sent = True
        try:
            await self._send_text(call.frame)
        except ConnectionLostError:
            if self.closed_reason is not None:
                raise

    async def _send_text(self, text: str | bytes, socket: ClientConnection | None = None) -> None:
        if self._ended is not None:
            raise self._ended
        socket = socket or self._socket
        if socket is None:
            return
        try:
            async with self._send_lock:
                if self.on_frame is not None:
                    self.on_frame("sent", text)
                await socket.send(text)
        except ConnectionClosed as err:
            raise self._ended or ConnectionLostError(_socket.closed_reason(err)) from None

    # Process channels.

    def register(self, process_id: str) -> EventChannel:
        """Open the event channel of a process about to be started."""
        if self._ended is not None:
            raise self._ended
        if process_id in self._channels:
            raise ValueError(f"process {process_id} is already followed on this connection")
        channel = EventChannel(process_id)
        self._channels[process_id] = channel
        return channel

    def unregister(self, process_id: str) -> None:
        """Stop following a process (its start failed, or it closed)."""
        self._channels.pop(process_id, None)

    def subscribe_watch(self, watch_id: str) -> asyncio.Queue[dict[str, Any] | ConnectionLostError]:
        """The queue of a watch about to be set: each ``fs/changed``'s params,
        then the error that ended the session, if it ends."""
        if self._ended is not None:
            raise self._ended
        queue: asyncio.Queue[dict[str, Any] | ConnectionLostError] = asyncio.Queue()
        self._watches[watch_id] = queue
        return queue

    def unsubscribe_watch(self, watch_id: str) -> None:
        """Stop queueing a watch's batches."""
        self._watches.pop(watch_id, None)

    def ack(self, process_id: str, seq: int) -> None:
        """Tell the server (in the background) that every event of the
        process up to ``seq`` was consumed (``process/ack``, flow control)."""

        async def send() -> None:
            try:
                await self.call("process/ack", {"processId": process_id, "seq": seq})
            except ExecdError:
                pass  # The process is gone, or the session: nothing to free.

        self._spawn(send())

    # Closing.

    async def close(self) -> None:
        """Close the connection (the server then ends this session's processes).

        Closed while reconnecting, the session is taken over on a connection of
        its own only to close that (one attempt within the policy's
        ``attempt_timeout``): the server ends it now, not after its grace."""
        detached = self.state == "reconnecting" and self.reconnect is not None and bool(self.info.session_id)
        self._closing = True
        self._end(ConnectionLostError("the client closed the connection"))
        socket = self._socket
        if socket is not None:
            await socket.close()
        self._driver.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(self._driver, *self._tasks, return_exceptions=True)
        if detached and self.reconnect is not None:
            session, timeout = self.info.session_id, self.reconnect.attempt_timeout
            await _socket.end_session(self.target, self._token, timeout, self._ca_file, session, self._client_name)

    def _end(self, error: ConnectionLostError) -> None:
        if self._ended is not None:
            return
        self._ended = error
        self.closed_reason = error.reason
        self.state = "closed"
        self._settled.set()
        for call in self._pending.values():
            if not call.answer.done():
                call.answer.set_exception(error)
                # Waiters see it through asyncio.wait; keep asyncio from warning.
                call.answer.exception()
        self._pending.clear()
        for channel in self._channels.values():
            channel.fail(error)
        for queue in self._watches.values():
            queue.put_nowait(error)
        self._fail_streams(error)

    # The session's life: read, and resume after a loss.

    async def _drive(self, socket: ClientConnection) -> None:
        reader = asyncio.get_running_loop().create_task(self._read(socket))
        catching_up: asyncio.Task[None] | None = None
        error = ConnectionLostError("the session ended")
        try:
            while True:
                ended = await reader
                if not ended.lost or self._closing or self.reconnect is None or not self.info.session_id:
                    error = ConnectionLostError(ended.reason)
                    break
                if catching_up is not None:
                    catching_up.cancel()
                self._socket = None
                self.state = "reconnecting"
                self._settled.clear()
                behind = [c for c in self._channels.values() if not c.finished]
                for channel in behind:
                    channel.begin_catch_up()
                try:
                    socket, reader = await self._resume(self.reconnect, ended.reason)
                except ResumeFailedError as err:
                    error = err
                    break
                catching_up = asyncio.get_running_loop().create_task(self._take_over(socket, behind))
        except asyncio.CancelledError:
            error = ConnectionLostError("the client closed the connection")
            raise
        finally:
            if catching_up is not None:
                catching_up.cancel()
            if not reader.done():
                reader.cancel()
            self._end(error)

    async def _take_over(self, socket: ClientConnection, behind: list[EventChannel]) -> None:
        """A new connection took over: send the calls in flight again (those
        safe to repeat), fail the others, then catch every channel up."""
        self._socket = socket
        self.resumes += 1
        again: list[_Call] = []
        for request_id in sorted(self._pending):
            call = self._pending[request_id]
            if call.resend or not call.sent:
                again.append(call)
            elif not call.answer.done():
                call.answer.set_exception(CallInterruptedError(call.method))
                call.answer.exception()
        self.state = "connected"
        self._settled.set()
        self._fail_streams(CallInterruptedError("file transfer"))  # Streams die with their connection.
        await self._flush_replies()  # Answers the server's asks wait for.
        for call in again:
            if not call.answer.done():
                await self._transmit(call)
        for channel in behind:
            await self._catch_up(channel)

    async def _catch_up(self, channel: EventChannel) -> None:
        """Deliver what ``process/read`` retained after the channel's last event."""
        params = {"processId": channel.process_id, "afterSeq": channel.next_seq - 1, "waitMs": 0}
        try:
            for event in _decode.read_events(await self.call("process/read", params)):
                channel.deliver(event)
        except ServerError:
            pass  # Not (yet) known to the server: its start is being sent again.
        except ConnectionLostError:
            return  # Lost again: the next resume catches up.
        except ProtocolError as err:
            channel.fail(err)
        channel.caught_up()

    async def _resume(
        self, policy: ReconnectPolicy, reason: str
    ) -> tuple[ClientConnection, asyncio.Task[_Ended]]:
        """Resume the session on a new connection, with backoff."""
        session = self.info.session_id
        deadline = time.monotonic() + policy.give_up_after
        delay = policy.first_delay
        last = reason
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResumeFailedError(
                    session,
                    f"could not resume session {session} within {policy.give_up_after:g} s: {last}",
                )
            try:
                return await asyncio.wait_for(self._attempt(session, policy.attempt_timeout), left)
            except _Gone as gone:
                raise gone.error from None
            except (ExecdError, OSError) as err:
                last = str(err)
            except asyncio.TimeoutError:
                last = "a resume attempt timed out"
            await asyncio.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, policy.max_delay)

    async def _attempt(self, session: str, timeout: float) -> tuple[ClientConnection, asyncio.Task[_Ended]]:
        """One attempt: connect, ``initialize {resumeSessionId}``, ``initialized``."""
        try:
            socket = await asyncio.wait_for(_socket.open_socket(self.target, self._token, timeout, self._ca_file), timeout)
        except UnauthorizedError as err:
            raise _Gone(ResumeFailedError(session, f"cannot resume session {session}: {err}")) from None
        except ConnectError as err:
            if _socket.NOT_LISTENING in err.reason:
                raise _Gone(SessionExpiredError(session, f"the session {session} is gone: {err}")) from None
            raise
        reader = asyncio.get_running_loop().create_task(self._read(socket))
        request_id = self._next_id
        self._next_id += 1
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        params = {"clientName": self._client_name, "binaryOutput": self._binary_output, "resumeSessionId": session}
        frame = json.dumps({"id": request_id, "method": "initialize", "params": params})
        self._pending[request_id] = _Call(frame, "initialize", False, answer, sent=True)
        try:
            await self._send_text(frame, socket)
            # Frames before the answer (notifications) are routed as usual.
            done, _ = await asyncio.wait({answer, reader}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if answer not in done:
                said = reader.result().reason if reader in done else "no answer to initialize"
                raise ConnectionLostError(said)
            try:
                result = answer.result()
            except InvalidRequestError as err:
                raise _Gone(SessionExpiredError(session, f"the session is gone: {err.message}")) from None
            if not isinstance(result, dict) or result.get("sessionId") != session:
                raise _Gone(
                    SessionExpiredError(
                        session, f"the server did not resume session {session} (it does not support resuming)"
                    )
                )
            await self._send_text(json.dumps({"method": "initialized", "params": {}}), socket)
            return socket, reader
        except BaseException:
            reader.cancel()
            _socket.abort(socket)
            raise
        finally:
            self._pending.pop(request_id, None)

    # Reading.

    async def _read(self, socket: ClientConnection) -> _Ended:
        pinger = _socket.Pinger(socket, self.keepalive)
        try:
            while True:
                frame = await socket.recv()
                pinger.heard()
                if self.on_frame is not None:
                    self.on_frame("received", frame)
                if isinstance(frame, bytes):
                    self._binary(frame)
                else:
                    await self._text(frame)
        except ConnectionClosed as err:
            return _Ended(_socket.was_lost(err), _socket.closed_reason(err))
        except Exception as err:  # A bug or a broken frame must not hang callers.
            _socket.abort(socket)
            return _Ended(False, f"reading from the server failed: {err!r}")
        finally:
            pinger.stop()

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
        call = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if call is None or call.answer.done():
            return
        error = message.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            call.answer.set_exception(
                server_error(
                    code if isinstance(code, int) else -32603,
                    str(error.get("message", "")),
                    error.get("data"),
                )
            )
            call.answer.exception()
        else:
            call.answer.set_result(message.get("result"))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def default_url() -> str:
    """``EXECD_URL``, else :data:`DEFAULT_URL`."""
    return os.environ.get("EXECD_URL") or DEFAULT_URL
