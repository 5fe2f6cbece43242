"""What the server sends unasked, routed: process notifications to each
process's :class:`~execd.channel.EventChannel`, ``fs/changed`` batches to
their watch's queue, transfer pieces (binary frames of kind 2),
``fs/transferAck`` and ``fs/transferEnd`` to their stream's queue,
``exec/decision`` and ``network/decision`` to the decision callbacks, and ``exec/approve`` and ``network/approve`` requests
answered through the approval callbacks (refused without one). A reply
that cannot go out because the connection was lost (or is being resumed)
is kept and sent on the connection that resumes the session: the server's
ask waits across the detach and takes its answer from whichever
connection serves the session. After a resume the server sends its
requests still waiting again (the lost connection may have swallowed
them): a request being decided is not decided twice, and one already
answered gets the same reply again. A mixin of
:class:`~execd.connection.Connection`, which holds the state it routes to.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Union, cast

from websockets.asyncio.client import ClientConnection

from . import _decode, network
from ._wire import KIND_PIECE, decode_binary_output, decode_piece
from .channel import EventChannel
from .errors import CallInterruptedError, ConnectionLostError, ExecdError, ProtocolError
from .types import Answer, ApprovalRequest, ExecDecision, Output

__all__ = ["Dispatch", "StreamItem"]

REMEMBERED_REPLIES = 256
"""Replies to the server's requests kept for a repeat after a resume (the
server keeps at most 256 waiting per session)."""

StreamItem = Union[tuple[str, int, Any], ExecdError]
"""What a transfer stream's queue holds: ``("piece", seq, bytes)``,
``("ack", seq, None)``, ``("end", 0, params)``, or the error that ended it."""


class Dispatch:
    """Routing of the server's notifications and requests (mixed into the connection)."""

    on_approve: Callable[[ApprovalRequest], Answer | Awaitable[Answer]] | None
    on_decision: Callable[[ExecDecision], None | Awaitable[None]] | None
    on_network_approve: network.NetworkApprovalCallback | None
    on_network_decision: network.NetworkDecisionCallback | None
    _channels: dict[str, EventChannel]
    _watches: dict[str, asyncio.Queue[dict[str, Any] | ConnectionLostError]]
    _streams: dict[int, asyncio.Queue[StreamItem]]
    _next_stream: int
    _ended: ConnectionLostError | None
    _socket: ClientConnection | None
    _unsent_replies: list[str]
    _deciding: set[str]
    _answered: OrderedDict[str, str]

    async def _send_text(self, text: str | bytes, socket: ClientConnection | None = None) -> None:
        raise NotImplementedError

    # Transfer streams.

    def open_stream(self) -> tuple[int, asyncio.Queue[StreamItem]]:
        """A fresh ``streamId`` and the queue its pieces, acks and end arrive on."""
        if self._ended is not None:
            raise self._ended
        while self._next_stream in self._streams or self._next_stream == 0:
            self._next_stream = (self._next_stream + 1) & 0xFFFFFFFF
        stream_id = self._next_stream
        self._next_stream = (self._next_stream + 1) & 0xFFFFFFFF
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        self._streams[stream_id] = queue
        return stream_id, queue

    def close_stream(self, stream_id: int) -> None:
        """Forget a stream (it ended, or its transfer gave up)."""
        self._streams.pop(stream_id, None)

    async def send_binary(self, frame: bytes) -> None:
        """Send a binary frame (a transfer piece) on the current connection;
        a transfer does not outlive it (:class:`CallInterruptedError`)."""
        socket = self._socket
        try:
            if socket is None:
                raise ConnectionLostError("no connection")
            await self._send_text(frame, socket)
        except ConnectionLostError:
            if self._ended is not None:
                raise self._ended from None
            raise CallInterruptedError("file transfer") from None

    def _fail_streams(self, error: ExecdError) -> None:
        for queue in self._streams.values():
            queue.put_nowait(error)
        self._streams.clear()

    def _binary(self, frame: bytes) -> None:
        if frame[:1] == bytes([KIND_PIECE]):
            try:
                stream_id, seq, data = decode_piece(frame)
            except ProtocolError:
                return
            queue = self._streams.get(stream_id)
            if queue is not None:
                queue.put_nowait(("piece", seq, data))
            return
        try:
            output = decode_binary_output(frame)
        except ProtocolError:
            return
        channel = self._channels.get(output.process_id)
        if channel is not None:
            channel.deliver(Output(output.seq, cast(Any, output.stream), output.data))

    async def _notification(self, method: str, params: dict[str, Any]) -> None:
        if method == "fs/changed":
            queue = self._watches.get(params.get("watchId"))  # type: ignore[arg-type]
            if queue is not None:
                queue.put_nowait(params)
            return
        if method in ("fs/transferAck", "fs/transferEnd"):
            stream = self._streams.get(params.get("streamId"))  # type: ignore[arg-type]
            seq = params.get("seq")
            if stream is not None and method == "fs/transferEnd":
                stream.put_nowait(("end", 0, params))
            elif stream is not None and isinstance(seq, int):
                stream.put_nowait(("ack", seq, None))
            return
        report: Any = None
        if method == "exec/decision" and self.on_decision is not None:
            decision = _decode.decision(params)
            report = None if decision is None else self.on_decision(decision)
        elif method == "network/decision" and self.on_network_decision is not None:
            decided = network.decision(params)
            report = None if decided is None else self.on_network_decision(decided)
        if inspect.isawaitable(report):
            await report
        if not method.startswith("process/"):
            return
        process_id = params.get("processId")
        channel = self._channels.get(process_id) if isinstance(process_id, str) else None
        if channel is None:
            return
        try:
            event = _decode.process_event(method, params)
        except ProtocolError as err:
            channel.fail(err)
            return
        if event is not None:
            channel.deliver(event)

    async def _answer_request(self, request_id: Any, method: str, params: dict[str, Any]) -> None:
        key = json.dumps(request_id)
        if key in self._deciding:
            return  # Asked again after a resume; the reply goes out when decided.
        known = self._answered.get(key)
        if known is not None:
            await self._send_reply(known)
            return
        self._deciding.add(key)
        try:
            if method == "exec/approve" and self.on_approve is not None:
                reply = await _decode.approval_reply(self.on_approve, request_id, params)
            elif method == "network/approve" and self.on_network_approve is not None:
                reply = await network.reply(self.on_network_approve, request_id, params)
            else:
                reply = {"id": request_id, "error": {"code": -32601, "message": f"client does not handle {method!r}"}}
        finally:
            self._deciding.discard(key)
        text = json.dumps(reply, separators=(",", ":"))
        self._answered[key] = text
        if len(self._answered) > REMEMBERED_REPLIES:
            self._answered.popitem(last=False)
        await self._send_reply(text)

    async def _send_reply(self, text: str) -> None:
        """Send a reply to a server request on the connection serving the
        session; without one (lost, being resumed) keep it for the next."""
        while self._ended is None:
            socket = self._socket
            if socket is None:
                self._unsent_replies.append(text)
                return
            try:
                await self._send_text(text, socket)
                return
            except ConnectionLostError:
                if self._socket is socket:
                    # The loss is not noticed yet: the resume sends it.
                    self._unsent_replies.append(text)
                    return
                # Another connection took over meanwhile: send it there.

    async def _flush_replies(self) -> None:
        """Send the replies kept while there was no connection (on the one
        that just took over; a reply lost again is kept again)."""
        replies, self._unsent_replies = self._unsent_replies, []
        for text in replies:
            await self._send_reply(text)
