"""Bulk file streams (``fs/upload``, ``fs/download``; docs/PROTOCOL.md,
"File transfers"): a file's bytes as numbered pieces in binary frames,
up to the server's window of them unacknowledged, without base64.
:func:`upload` sends bytes (or a binary file object) to a path, in place
only once complete; :func:`download` yields a file's pieces as they
arrive, acknowledging each. Both need ``capabilities.fileTransfers``; a
stream does not survive its connection (a resume fails it with
:class:`~execd.CallInterruptedError`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any, BinaryIO, Literal

from ._dispatch import StreamItem
from ._wire import encode_piece
from .connection import Connection
from .errors import ExecdError, FailedError, ProtocolError, RequestTimeoutError

__all__ = ["upload", "download", "TransferFormat", "available"]

TransferFormat = Literal["file", "tree"]
"""``file``: a regular file's bytes; ``tree``: a directory as a tar stream."""


def available(connection: Connection) -> bool:
    """Whether ``fs/upload`` and ``fs/download`` work on this connection."""
    return connection.info.capabilities.get("fileTransfers") is True


async def _next(queue: asyncio.Queue[StreamItem], connection: Connection, method: str) -> tuple[str, int, Any]:
    """The stream's next item (bounded by the request timeout); its error raised."""
    try:
        item = await asyncio.wait_for(queue.get(), connection.request_timeout)
    except asyncio.TimeoutError:
        raise RequestTimeoutError(method, connection.request_timeout) from None
    if isinstance(item, ExecdError):
        raise item
    return item


def _failed(params: Any, what: str) -> FailedError:
    error = params.get("error") if isinstance(params, dict) else None
    return FailedError(-32603, f"{what}: {error}", params)


async def _cancel(connection: Connection, stream_id: int) -> None:
    with contextlib.suppress(ExecdError):
        await connection.call("fs/transferCancel", {"streamId": stream_id})


async def upload(
    connection: Connection,
    path: str,
    data: bytes | BinaryIO,
    *,
    format: TransferFormat = "file",
    preserve: bool = False,
) -> int:
    """Write ``data`` (bytes, or a binary file read to its end) to ``path``
    through ``fs/upload``; the bytes the server wrote. Nothing is in place
    under ``path`` unless the whole upload succeeded."""
    stream_id, queue = connection.open_stream()
    finished = False
    try:
        params = {"streamId": stream_id, "path": path, "format": format, "preserve": preserve}
        opened = await connection.call("fs/upload", params)
        try:
            window, piece_bytes = int(opened["window"]), int(opened["pieceBytes"])
        except (KeyError, TypeError, ValueError) as err:
            raise ProtocolError(f"bad fs/upload result: {opened!r}") from err
        seq, acked, offset = 0, -1, 0  # acked: the last piece the server wrote
        while True:
            if isinstance(data, bytes):
                piece, offset = data[offset : offset + piece_bytes], offset + piece_bytes
            else:
                piece = data.read(piece_bytes)
            if not piece:
                break
            while seq - acked > window or not queue.empty():
                kind, number, extra = await _next(queue, connection, "fs/upload")
                if kind == "end":
                    raise _failed(extra, f"upload to {path} failed")
                acked = max(acked, number)
            await connection.send_binary(encode_piece(stream_id, seq, piece))
            seq += 1
        result = await connection.call("fs/uploadFinish", {"streamId": stream_id, "pieces": seq})
        finished = True
        return int(result["bytes"]) if isinstance(result, dict) else 0
    except BaseException:
        if not finished:
            await _cancel(connection, stream_id)
        raise
    finally:
        connection.close_stream(stream_id)


async def download(
    connection: Connection, path: str, *, format: TransferFormat = "file"
) -> AsyncGenerator[bytes, None]:
    """The file at ``path`` (or a tree's tar stream) through ``fs/download``,
    piece by piece; each piece is acknowledged as it is taken."""
    stream_id, queue = connection.open_stream()
    ended = False
    try:
        await connection.call("fs/download", {"streamId": stream_id, "path": path, "format": format})
        expected = 0
        while True:
            kind, seq, extra = await _next(queue, connection, "fs/download")
            if kind == "end":
                ended = True
                if isinstance(extra, dict) and extra.get("error"):
                    raise _failed(extra, f"download of {path} failed")
                if isinstance(extra, dict) and extra.get("pieces") != expected:
                    raise ProtocolError(f"fs/transferEnd says {extra.get('pieces')} pieces; {expected} arrived")
                return
            if kind != "piece":
                continue
            if seq != expected:
                raise ProtocolError(f"download of {path}: piece {seq} arrived where {expected} was due")
            expected += 1
            yield extra
            await connection.notify("fs/transferAck", {"streamId": stream_id, "seq": seq})
    finally:
        connection.close_stream(stream_id)
        if not ended:
            await _cancel(connection, stream_id)
