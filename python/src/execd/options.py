"""How a connection behaves on a real network: reconnecting and resuming
its session after a loss (:class:`ReconnectPolicy`), keepalive pings
(:class:`Keepalive`), the default per-process output window
(:data:`DEFAULT_OUTPUT_WINDOW`), and which calls may be sent again after a
resume (:func:`resend_safe`). The defaults are the Rust client's
(``ConnectOptions`` in crates/client/src/websocket.rs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ReconnectPolicy", "Keepalive", "DEFAULT_OUTPUT_WINDOW", "resend_safe"]

DEFAULT_OUTPUT_WINDOW = 8 * 1024 * 1024
"""The ``outputWindow`` processes are started with unless told otherwise:
large enough that streaming keeps its unwindowed rate (docs/BENCHMARKS.md)."""


@dataclass(frozen=True)
class ReconnectPolicy:
    """How to resume the session after a connection lost without a close.

    The first attempt goes at once, the next ones ``first_delay`` apart,
    doubling up to ``max_delay``, until ``initialize {resumeSessionId}``
    answers with the same session, the session is known to be gone (the
    server says it is unknown or expired, or nothing listens at the address
    any more), or ``give_up_after`` seconds have passed since the loss.
    """

    first_delay: float = 0.1
    """Seconds between the first two attempts."""
    max_delay: float = 2.0
    """The longest pause between attempts, in seconds."""
    give_up_after: float = 120.0
    """Seconds after the loss when resuming stops (the server's default
    ``--detach-grace``: past it the session is gone anyway)."""
    attempt_timeout: float = 10.0
    """Bounds one attempt (connect, upgrade, ``initialize``), in seconds."""


@dataclass(frozen=True)
class Keepalive:
    """Client-side keepalive: a WebSocket ping every ``interval`` seconds;
    a server from which nothing (no frame, no pong) arrived for ``timeout``
    seconds counts as lost (the connection is dropped without a close frame,
    so the session detaches and is resumed). 0 turns either off; the
    timeout needs the pings (an idle server says nothing else)."""

    interval: float = 15.0
    """Seconds between pings."""
    timeout: float = 45.0
    """Seconds of silence after which the connection counts as lost."""


def resend_safe(method: str, params: Any) -> bool:
    """Whether a request may be sent again after a resume without doing its
    work twice: ``process/write`` carries a ``writeId``, ``process/start`` is
    idempotent by ``processId`` after a resume, reads and queries repeat
    harmlessly; a signal, an HTTP request or an appending write may not, nor
    a file transfer's calls (a stream ends with its connection)."""
    if method in ("process/signal", "http/request", "fs/upload", "fs/uploadFinish", "fs/download"):
        return False
    if not isinstance(params, dict):
        return True
    if method == "process/write":
        return params.get("writeId") is not None
    if method == "fs/writeFile":
        return params.get("append") is not True
    return True
