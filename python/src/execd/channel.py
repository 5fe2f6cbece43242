"""One process's event channel: its events in seq order as they arrive,
merged across a resumed connection, and acknowledged as they are taken.

The connection's reader delivers; the owner takes events with
:meth:`EventChannel.get`. A seq out of order ends the channel with
:class:`~execd.errors.SeqGapError`, except while *catching up* after a
resume: then events already delivered are dropped and events past a gap
are held until the catch-up read fills it (a gap left after it is an
error). A windowed process's channel acknowledges consumed output through
its ack hook a quarter of the window at a time (flow control).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .errors import ExecdError, ProtocolError, SeqGapError
from .types import Closed, Exited, Output, ProcessEvent

__all__ = ["EventChannel", "AckHook"]

AckHook = Callable[[str, int], None]
"""Told ``(process_id, seq)`` once every event up to ``seq`` was taken."""


class EventChannel:
    """One process's events, in seq order, as they arrive.

    How the process ended is kept apart from the queue, so
    :meth:`wait_exit` works whether or not anyone reads the events.
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
        self._resumed = False
        self._held: dict[int, ProcessEvent] | None = None
        self._ack: AckHook | None = None
        self._ack_batch = 0
        self._unacked = 0
        self.buffered_bytes = 0
        """Output bytes delivered but not yet taken (bounded by the output
        window for a windowed process: the server sends no more until
        taken output is acknowledged)."""

    @property
    def finished(self) -> bool:
        """Whether no more events will come (closed, or failed)."""
        return self.closed or self.failure is not None

    def acking(self, window: int, hook: AckHook) -> None:
        """Acknowledge taken output through ``hook`` once a quarter of
        ``window`` bytes was taken since the last acknowledgement."""
        self._ack = hook
        self._ack_batch = max(window // 4, 1)

    def deliver(self, event: ProcessEvent) -> None:
        """Take one event from the reader; checks its seq."""
        if self.finished:
            return
        if event.seq < self.next_seq and self._resumed:
            return
        if event.seq != self.next_seq:
            if self._held is not None and event.seq > self.next_seq:
                self._held[event.seq] = event
                return
            self.fail(SeqGapError(self.process_id, self.next_seq, event.seq))
            return
        self._pass(event)
        while self._held and not self.finished:
            for seq in [s for s in self._held if s < self.next_seq]:
                del self._held[seq]
            due = self._held.pop(self.next_seq, None)
            if due is None:
                break
            self._pass(due)

    def _pass(self, event: ProcessEvent) -> None:
        self.next_seq += 1
        if isinstance(event, Output):
            self.buffered_bytes += len(event.data)
        self._queue.put_nowait(event)
        if isinstance(event, Exited):
            self.exit = event
            self._exited.set()
        elif isinstance(event, Closed):
            self.closed = True
            self._exited.set()
            self._closed.set()

    def begin_catch_up(self) -> None:
        """The connection is being resumed: hold events past a gap, drop
        repeats, until :meth:`caught_up`."""
        self._resumed = True
        if self._held is None:
            self._held = {}

    def caught_up(self) -> None:
        """The catch-up read was delivered: anything still held past a gap
        means events were lost (evicted from the server's retained output)."""
        held, self._held = self._held or {}, None
        later = sorted(seq for seq in held if seq >= self.next_seq)
        if later and not self.finished:
            self.fail(SeqGapError(self.process_id, self.next_seq, later[0]))

    def fail(self, error: ExecdError) -> None:
        """End the channel with ``error`` (unless it already closed)."""
        if self.finished:
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
        if isinstance(item, Output):
            self.buffered_bytes -= len(item.data)
        if isinstance(item, Output) and self._ack is not None:
            self._unacked += len(item.data)
            if self._unacked >= self._ack_batch:
                self._unacked = 0
                self._ack(self.process_id, item.seq)
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
