"""``fs/watch``: changes under a path, as batches. :class:`FsWatch` is an
async context manager and an async iterator: entering sends ``fs/watch``
(its queue is set before, so no batch is missed), each iteration gives one
``fs/changed`` batch as a list of :class:`FsChange`, and leaving (or
:meth:`FsWatch.close`) sends ``fs/unwatch``. Changes the server could not
keep arrive as a change of kind ``overflow``: look at the tree again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from .connection import Connection
from .errors import ConnectionLostError, ProtocolError

__all__ = ["FsWatch", "FsChange", "ChangeKind"]

ChangeKind = Literal["created", "modified", "removed", "renamed", "overflow"]
"""What happened to a path (``overflow``: changes were lost; look again)."""

_CLOSED: dict[str, Any] = {}
"""Queued by :meth:`FsWatch.close` after the last batch."""


@dataclass(frozen=True)
class FsChange:
    """One change of a batch."""

    kind: ChangeKind
    """``created``, ``modified`` (contents or metadata), ``removed``, ``renamed`` or ``overflow``."""
    path: str
    """The path (for ``renamed`` the new one when known; for ``overflow`` the watched path)."""
    from_path: str | None = None
    """``renamed``: the old path, when it was inside the watch."""
    to_path: str | None = None
    """``renamed``: the new path, when it is inside the watch."""
    limit: str | None = None
    """``overflow``: the server limit that was reached (``maxFsWatchEvents``), if one was."""


class FsWatch:
    """``async with env.fs.watch(path) as watch: async for batch in watch: ...``"""

    def __init__(self, connection: Connection, path: str, recursive: bool) -> None:
        self._connection = connection
        self.path = path
        """The watched path."""
        self.recursive = recursive
        """Whether directories below it are watched too."""
        self.watch_id = f"py-watch-{uuid.uuid4().hex[:16]}"
        """The ``watchId`` on the wire."""
        self.watched_paths = 0
        """How many inotify watches the server holds for it (set on start)."""
        self._queue: asyncio.Queue[dict[str, Any] | ConnectionLostError] | None = None
        self._closed = False

    async def start(self) -> FsWatch:
        """Send ``fs/watch`` (a missing path raises :class:`~execd.NotFoundError`)."""
        if self._queue is not None:
            raise RuntimeError(f"watch {self.watch_id} was already started")
        self._queue = self._connection.subscribe_watch(self.watch_id)
        params = {"watchId": self.watch_id, "path": self.path, "recursive": self.recursive}
        try:
            result = await self._connection.call("fs/watch", params)
        except BaseException:
            self._connection.unsubscribe_watch(self.watch_id)
            self._closed = True
            raise
        watched = result.get("watchedPaths") if isinstance(result, dict) else None
        self.watched_paths = watched if isinstance(watched, int) else 0
        return self

    async def close(self) -> bool:
        """Send ``fs/unwatch``; iteration then ends after the batches already
        received. Whether the server still had the watch (``False`` once the
        session is gone)."""
        if self._queue is None or self._closed:
            return False
        self._closed = True
        removed = False
        with contextlib.suppress(ConnectionLostError):
            result = await self._connection.call("fs/unwatch", {"watchId": self.watch_id})
            removed = isinstance(result, dict) and result.get("removed") is True
        self._connection.unsubscribe_watch(self.watch_id)
        self._queue.put_nowait(_CLOSED)
        return removed

    def __aiter__(self) -> FsWatch:
        return self

    async def __anext__(self) -> list[FsChange]:
        if self._queue is None:
            raise RuntimeError("start the watch first (async with, or await watch.start())")
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)
            raise StopAsyncIteration
        if isinstance(item, ConnectionLostError):
            self._queue.put_nowait(item)
            raise item
        return _changes(item)

    async def next_batch(self, timeout: float) -> list[FsChange]:
        """The next batch, waiting at most ``timeout`` seconds
        (:class:`asyncio.TimeoutError`; :class:`StopAsyncIteration` once closed)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def __aenter__(self) -> FsWatch:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _changes(params: dict[str, Any]) -> list[FsChange]:
    """The changes of an ``fs/changed`` notification."""
    try:
        changes = []
        for raw in params["changes"]:
            kind = raw["kind"]
            if kind not in ("created", "modified", "removed", "renamed", "overflow"):
                raise ValueError(f"unknown change kind {kind!r}")
            changes.append(FsChange(kind, str(raw["path"]), raw.get("from"), raw.get("to"), raw.get("limit")))
        return changes
    except (KeyError, TypeError, ValueError) as err:
        raise ProtocolError(f"bad fs/changed notification: {params!r}: {err}") from None
