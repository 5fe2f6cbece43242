"""A started process: its events as an async iterator, and what can be done
to it (write stdin, close it, resize its terminal, signal, terminate, wait).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from ._decode import read_chunks
from ._wire import encode_b64
from .channel import EventChannel
from .connection import Connection
from .errors import LimitExceededError, ProtocolError
from .types import Closed, ExitStatus, Output, ProcessEvent, SandboxType, WriteStatus

__all__ = ["Process", "ReadResult", "WRITE_PIECE"]

WRITE_PIECE = 1024 * 1024
"""Bytes per ``process/write`` when :meth:`Process.write_all` feeds a large input."""

_RETRY_FIRST = 0.005
_RETRY_MAX = 0.2


@dataclass(frozen=True)
class ReadResult:
    """What ``process/read`` returned: retained output after a seq, and the state."""

    chunks: list[Output]
    """Retained chunks with seq above ``after_seq`` (a gap: output dropped by retention)."""
    next_seq: int
    """The seq after the last chunk returned (or the next event's seq)."""
    exited: bool
    """Whether the process exited."""
    exit_code: int | None
    """Its exit code, once exited."""
    closed: bool
    """Whether it closed."""
    signal: str | None = None
    """The signal that ended it, if one did."""
    exited_seq: int | None = None
    """The seq of the ``exited`` event, once the process exited (execd)."""
    closed_seq: int | None = None
    """The seq of the ``closed`` event, once the process closed (execd)."""
    sandbox_denied: bool | None = None
    """Whether the failure was a sandbox denial (execd always says ``False``;
    absent from servers that do not send it)."""


class Process:
    """A process started by :meth:`execd.Environment.start`.

    Iterate it (``async for event in process``) for its events in seq order:
    :class:`~execd.Output` chunks, then :class:`~execd.Exited`, then
    :class:`~execd.Closed`, where iteration ends. A seq gap raises
    :class:`~execd.SeqGapError`; a session that ended raises
    :class:`~execd.ConnectionLostError`. Across a resumed connection the
    events go on with no gap and no repeat. A process started with an
    output window has its output acknowledged as the events are taken:
    one whose events nobody takes stops (blocked in its writes) once that
    many bytes are unread.
    """

    def __init__(
        self,
        connection: Connection,
        channel: EventChannel,
        argv: list[str],
        sandbox_type: SandboxType | None = None,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self.argv = argv
        """The command."""
        self.sandbox_type = sandbox_type
        """``sandboxType`` from the start's result (codex dialect only; else ``None``)."""

    @property
    def id(self) -> str:
        """The process id (unique on its connection)."""
        return self._channel.process_id

    @property
    def exit_status(self) -> ExitStatus | None:
        """How the process ended, once its ``exited`` event came."""
        exit = self._channel.exit
        return ExitStatus(exit.exit_code, exit.signal) if exit is not None else None

    @property
    def buffered_bytes(self) -> int:
        """Output bytes received but not yet taken from the events (at most
        the output window for a windowed process)."""
        return self._channel.buffered_bytes

    def __aiter__(self) -> AsyncIterator[ProcessEvent]:
        return self.events()

    async def events(self) -> AsyncIterator[ProcessEvent]:
        """The process's events until (and including) ``closed``."""
        while True:
            event = await self._channel.get()
            yield event
            if isinstance(event, Closed):
                self._connection.unregister(self.id)
                return

    async def write(
        self, data: bytes, *, close_stdin: bool = False, write_id: str | None = None
    ) -> WriteStatus:
        """Write ``data`` to stdin (one request); ``close_stdin`` sends EOF after it.

        The status is a result, not an error: ``accepted``, ``unknownProcess``,
        ``stdinClosed`` or ``starting``. A full stdin queue raises
        :class:`~execd.LimitExceededError` (nothing was written; try again).
        ``write_id`` (at most 128 bytes) is the retry key: the server applies a
        write with an id it remembers only once. Without one a fresh id is
        made, so a write in flight when the connection is lost is sent again
        after the resume and still applied exactly once.
        """
        params: dict[str, Any] = {
            "processId": self.id,
            "chunk": encode_b64(data),
            "writeId": write_id if write_id is not None else uuid.uuid4().hex,
        }
        if close_stdin:
            params["closeStdin"] = True
        result = await self._connection.call("process/write", params)
        status = result.get("status") if isinstance(result, dict) else None
        if status not in ("accepted", "unknownProcess", "stdinClosed", "starting"):
            raise ProtocolError(f"bad process/write result: {result!r}")
        return cast(WriteStatus, status)

    async def write_all(self, data: bytes, *, close_stdin: bool = False) -> WriteStatus:
        """Write ``data`` in pieces, waiting while the server's stdin queue is
        full or the process is still ``starting``; stops at another status."""
        pieces = [data[i : i + WRITE_PIECE] for i in range(0, len(data), WRITE_PIECE)] or [b""]
        status: WriteStatus = "accepted"
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            delay = _RETRY_FIRST
            write_id = uuid.uuid4().hex
            while True:
                try:
                    status = await self.write(piece, close_stdin=close_stdin and last, write_id=write_id)
                except LimitExceededError as err:
                    if err.limit != "maxStdinQueueBytes":
                        raise
                    status = "starting"
                if status != "starting":
                    break
                # Back off: the program drains its stdin, or its exec is being approved.
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
            if status != "accepted":
                return status
        return status

    async def close_stdin(self) -> WriteStatus:
        """Send EOF to stdin (on a PTY: the terminal's EOF character)."""
        return await self.write(b"", close_stdin=True)

    async def resize(self, rows: int, cols: int) -> None:
        """Set the terminal size of a PTY process."""
        await self._connection.call(
            "process/resize", {"processId": self.id, "rows": rows, "cols": cols}
        )

    async def signal(self, signal: str) -> bool:
        """Send a signal by name (``INT``, ``TERM``, ``KILL``, ``HUP``, ``QUIT``,
        ``USR1``, ``USR2``, ``WINCH``) to the process group; true if it was running."""
        result = await self._connection.call(
            "process/signal", {"processId": self.id, "signal": signal}
        )
        return bool(result.get("running")) if isinstance(result, dict) else False

    async def terminate(self) -> bool:
        """SIGTERM the process group, SIGKILL after the server's grace; true if it was running."""
        result = await self._connection.call("process/terminate", {"processId": self.id})
        return bool(result.get("running")) if isinstance(result, dict) else False

    async def wait(self, timeout: float | None = None) -> ExitStatus:
        """Wait until the process exited (``asyncio.TimeoutError`` after ``timeout`` s)."""
        exit = await asyncio.wait_for(self._channel.wait_exit(), timeout)
        return ExitStatus(exit.exit_code, exit.signal)

    async def read(
        self, after_seq: int = 0, *, max_bytes: int | None = None, wait_ms: int | None = None
    ) -> ReadResult:
        """Retained output after ``after_seq`` (``process/read``); ``wait_ms``
        long-polls for something new."""
        timeout = self._connection.request_timeout + (wait_ms or 0) / 1000
        result = await self._connection.call(
            "process/read",
            {"processId": self.id, "afterSeq": after_seq, "maxBytes": max_bytes, "waitMs": wait_ms},
            timeout=timeout,
        )
        if not isinstance(result, dict):
            raise ProtocolError(f"bad process/read result: {result!r}")
        exited_seq = result.get("exitedSeq")
        closed_seq = result.get("closedSeq")
        denied = result.get("sandboxDenied")
        return ReadResult(
            chunks=read_chunks(result),
            next_seq=int(result.get("nextSeq", 0)),
            exited=bool(result.get("exited")),
            exit_code=result.get("exitCode"),
            closed=bool(result.get("closed")),
            signal=result.get("signal"),
            exited_seq=exited_seq if isinstance(exited_seq, int) else None,
            closed_seq=closed_seq if isinstance(closed_seq, int) else None,
            sandbox_denied=denied if isinstance(denied, bool) else None,
        )
