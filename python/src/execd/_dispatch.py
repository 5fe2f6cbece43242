"""What the server sends unasked, routed: process notifications to each
process's :class:`~execd.channel.EventChannel`, ``fs/changed`` batches to
their watch's queue, ``exec/decision`` and ``network/decision`` to the
decision callbacks, and ``exec/approve`` and ``network/approve`` requests
answered through the approval callbacks (refused without one). A mixin of
:class:`~execd.connection.Connection`, which holds the state it routes to.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

from . import _decode, network
from .channel import EventChannel
from .errors import ConnectionLostError, ProtocolError
from .types import Answer, ApprovalRequest, ExecDecision

__all__ = ["Dispatch"]


class Dispatch:
    """Routing of the server's notifications and requests (mixed into the connection)."""

    on_approve: Callable[[ApprovalRequest], Answer | Awaitable[Answer]] | None
    on_decision: Callable[[ExecDecision], None | Awaitable[None]] | None
    on_network_approve: network.NetworkApprovalCallback | None
    on_network_decision: network.NetworkDecisionCallback | None
    _channels: dict[str, EventChannel]
    _watches: dict[str, asyncio.Queue[dict[str, Any] | ConnectionLostError]]

    async def _send_text(self, text: str, socket: ClientConnection | None = None) -> None:
        raise NotImplementedError

    async def _notification(self, method: str, params: dict[str, Any]) -> None:
        if method == "fs/changed":
            queue = self._watches.get(params.get("watchId"))  # type: ignore[arg-type]
            if queue is not None:
                queue.put_nowait(params)
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
        if method == "exec/approve" and self.on_approve is not None:
            reply = await _decode.approval_reply(self.on_approve, request_id, params)
        elif method == "network/approve" and self.on_network_approve is not None:
            reply = await network.reply(self.on_network_approve, request_id, params)
        else:
            reply = {"id": request_id, "error": {"code": -32601, "message": f"client does not handle {method!r}"}}
        try:
            await self._send_text(json.dumps(reply, separators=(",", ":")))
        except ConnectionLostError:
            pass
