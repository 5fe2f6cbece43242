"""``fs/walk`` with execd's extensions, page by page: :class:`Walk` is an
async iterator over every entry of a tree (breadth first, by name), asking
for the next page with the cursor the last one returned until there is
none. Each entry is a :class:`WalkEntry`; the directories that could not
be read are collected in :attr:`Walk.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from .connection import Connection
from .errors import ProtocolError

__all__ = ["Walk", "WalkEntry", "WalkError", "WalkEntryKind"]

WalkEntryKind = Literal["file", "directory", "symlink", "other"]
"""What a walked entry is (``symlink`` and ``other`` only when asked for)."""


@dataclass(frozen=True)
class WalkEntry:
    """One entry below the walked root."""

    path: str
    """Its path (in the form the root was given)."""
    kind: WalkEntryKind
    """``file``, ``directory``, ``symlink`` (not followed) or ``other`` (fifo, socket, device)."""
    size: int | None = None
    """Size in bytes (with ``metadata``; of the link itself for a symlink)."""
    mode: int | None = None
    """Permission bits, ``st_mode & 0o7777`` (with ``metadata``)."""
    modified_at_ms: int | None = None
    """Last modification, ms since the epoch (with ``metadata``)."""


@dataclass(frozen=True)
class WalkError:
    """A directory the walk could not read."""

    path: str
    """The directory."""
    message: str
    """Why."""


class Walk:
    """``async for entry in env.fs.walk(root)``: every entry, page after page."""

    def __init__(self, connection: Connection, params: dict[str, Any]) -> None:
        self._connection = connection
        self._params = params
        self.errors: list[WalkError] = []
        """The directories that could not be read (filled as the walk goes)."""
        self.truncated = False
        """Whether a limit (``max_entries``, ``max_directories``) stopped the walk."""
        self.pages = 0
        """How many pages (``fs/walk`` calls) it took so far."""

    def __aiter__(self) -> AsyncIterator[WalkEntry]:
        return self._entries()

    async def _entries(self) -> AsyncIterator[WalkEntry]:
        cursor: str | None = None
        while True:
            params = dict(self._params)
            if cursor is not None:
                params["cursor"] = cursor
            result = await self._connection.call("fs/walk", params)
            self.pages += 1
            try:
                entries = [_entry(e) for e in result["entries"]]
                self.errors.extend(WalkError(str(e["path"]), str(e["message"])) for e in result["errors"])
                self.truncated = self.truncated or bool(result["truncated"])
                cursor = result.get("nextCursor")
            except (KeyError, TypeError, ValueError) as err:
                raise ProtocolError(f"bad fs/walk result: {result!r}") from err
            for entry in entries:
                yield entry
            if not isinstance(cursor, str):
                return

    async def collect(self) -> list[WalkEntry]:
        """Every entry, in walk order."""
        return [entry async for entry in self]


def _entry(raw: dict[str, Any]) -> WalkEntry:
    kind = raw["kind"]
    if kind not in ("file", "directory", "symlink", "other"):
        raise ValueError(f"unknown kind {kind!r}")

    def number(name: str) -> int | None:
        value = raw.get(name)
        return int(value) if value is not None else None

    return WalkEntry(str(raw["path"]), kind, number("size"), number("mode"), number("modifiedAtMs"))
