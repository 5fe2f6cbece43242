"""Decoding what the server sends into the package's types: process
notifications, the events in a ``process/read`` result (for catching up
after a resume), ``exec/approve`` requests, ``exec/decision``
notifications and ``file://`` paths. Malformed input raises
:class:`~execd.errors.ProtocolError` (or returns ``None`` where the
frame can be ignored).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from ._wire import STREAMS, decode_b64
from .errors import ProtocolError
from .types import Answer, ApprovalRequest, Closed, ExecDecision, Exited, Output, ProcessEvent, Stream


def file_uri_path(uri: object) -> str | None:
    """The path of a ``file://`` URI (or of a plain absolute path)."""
    if not isinstance(uri, str):
        return None
    if uri.startswith("/"):
        return uri
    parts = urlsplit(uri)
    if parts.scheme != "file":
        return None
    return unquote(parts.path) or None


def process_event(method: str, params: dict[str, Any]) -> ProcessEvent | None:
    """The event of a ``process/*`` notification (``None``: not an event)."""
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


def read_chunks(result: dict[str, Any]) -> list[Output]:
    """The output chunks of a ``process/read`` result."""
    chunks = result.get("chunks", [])
    if not isinstance(chunks, list):
        raise ProtocolError("process/read chunks is not a list")
    out = []
    for chunk in chunks:
        if not isinstance(chunk, dict) or not isinstance(chunk.get("seq"), int):
            raise ProtocolError(f"bad process/read chunk: {chunk!r}")
        stream = chunk.get("stream")
        if stream not in STREAMS:
            raise ProtocolError(f"process/read chunk names unknown stream {stream!r}")
        data = decode_b64(chunk.get("chunk"), "process/read chunk")
        out.append(Output(chunk["seq"], cast(Stream, stream), data))
    return out


def read_events(result: object) -> list[ProcessEvent]:
    """Every event a ``process/read`` result carries, in seq order: its
    chunks, and ``exited``/``closed`` placed by ``exitedSeq``/``closedSeq``."""
    if not isinstance(result, dict):
        raise ProtocolError(f"bad process/read result: {result!r}")
    events: list[ProcessEvent] = list(read_chunks(result))
    exited_seq = result.get("exitedSeq")
    if result.get("exited") and isinstance(exited_seq, int):
        code = result.get("exitCode")
        signal = result.get("signal")
        events.append(
            Exited(
                exited_seq,
                code if isinstance(code, int) else -1,
                signal if isinstance(signal, str) else None,
            )
        )
    closed_seq = result.get("closedSeq")
    if result.get("closed") and isinstance(closed_seq, int):
        events.append(Closed(closed_seq))
    events.sort(key=lambda event: event.seq)
    return events


def approval_request(params: dict[str, Any]) -> ApprovalRequest:
    """An ``exec/approve`` request (``KeyError``/``ValueError`` if malformed)."""
    return ApprovalRequest(
        process_id=str(params["processId"]),
        pid=int(params.get("pid", 0)),
        path=str(params.get("path", "")),
        argv=[str(a) for a in params.get("argv", [])],
        cwd=str(params.get("cwd", "")),
        escalation=bool(params.get("escalation", False)),
    )


async def approval_reply(
    on_approve: Callable[[ApprovalRequest], Answer | Awaitable[Answer]],
    request_id: Any,
    params: dict[str, Any],
) -> dict[str, Any]:
    """The reply to an ``exec/approve`` request, as ``on_approve`` decides it
    (an error reply if the request is malformed or the callback fails)."""
    try:
        answer = on_approve(approval_request(params))
        decided = await answer if inspect.isawaitable(answer) else answer
        if decided not in ("run", "escalate", "deny"):
            raise ValueError(f"the approval callback answered {decided!r}")
        return {"id": request_id, "result": {"decision": decided}}
    except Exception as err:
        return {"id": request_id, "error": {"code": -32603, "message": f"approval failed: {err}"}}


def decision(params: dict[str, Any]) -> ExecDecision | None:
    """An ``exec/decision`` notification (``None`` if malformed)."""
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
