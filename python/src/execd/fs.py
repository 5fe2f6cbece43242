"""The server's filesystem: the ``fs/*`` methods with bytes in and out,
renames, paged tree walks (:mod:`execd.walk`), change watches
(:mod:`execd.watch`) and bulk streams (:mod:`execd.transfer`), which
:meth:`FileSystem.read_file` and :meth:`FileSystem.write_file` use for
large files where the server offers them. Every path is absolute; a missing path raises
:class:`~execd.NotFoundError`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, BinaryIO

from ._wire import decode_b64, encode_b64
from . import transfer
from .connection import Connection
from .errors import LimitExceededError, NotFoundError, ProtocolError
from .types import DirectoryEntry, Metadata
from .walk import Walk
from .watch import FsWatch

__all__ = ["FileSystem", "STREAM_THRESHOLD"]

STREAM_THRESHOLD = 1 << 20
"""Writes of more bytes than this go through ``fs/upload`` where the server offers it."""


class FileSystem:
    """Files on the server's machine (``env.fs``)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        result = await self._connection.call(method, params)
        if not isinstance(result, dict):
            raise ProtocolError(f"bad {method} result: {result!r}")
        return result

    async def read_file(self, path: str) -> bytes:
        """The whole file: one ``fs/readFile``, or, for a file over the
        server's ``maxReadBytes`` where it offers transfers, ``fs/download``."""
        try:
            result = await self._call("fs/readFile", {"path": path})
        except LimitExceededError as err:
            if err.limit != "maxReadBytes" or not transfer.available(self._connection):
                raise
            return b"".join([piece async for piece in self.download(path)])
        return decode_b64(result.get("dataBase64"), f"fs/readFile {path}")

    def download(self, path: str, *, format: transfer.TransferFormat = "file") -> AsyncGenerator[bytes, None]:
        """The file (or, with ``format="tree"``, a directory as a tar stream)
        piece by piece through ``fs/download``: ``async for piece in env.fs.download(p)``."""
        return transfer.download(self._connection, path, format=format)

    async def upload(
        self, path: str, data: bytes | BinaryIO, *, format: transfer.TransferFormat = "file", preserve: bool = False
    ) -> int:
        """Write ``data`` (bytes, or a binary file read to its end; with
        ``format="tree"`` a tar stream unpacked into the directory ``path``)
        through ``fs/upload``; the bytes written. Nothing is in place under
        ``path`` unless it all arrived."""
        return await transfer.upload(self._connection, path, data, format=format, preserve=preserve)

    async def read_range(self, path: str, offset: int, length: int) -> tuple[bytes, bool]:
        """Up to ``length`` bytes from ``offset``, and whether that reached the end."""
        result = await self._call("fs/readFile", {"path": path, "offset": offset, "length": length})
        data = decode_b64(result.get("dataBase64"), f"fs/readFile {path}")
        return data, bool(result.get("eof", False))

    async def write_file(self, path: str, data: bytes, *, append: bool = False) -> None:
        """Replace the file with ``data`` (or append to it), creating it.
        More than :data:`STREAM_THRESHOLD` bytes replacing a file go through
        ``fs/upload`` where the server offers it (in place only once complete)."""
        if not append and len(data) > STREAM_THRESHOLD and transfer.available(self._connection):
            await self.upload(path, data)
            return
        params: dict[str, Any] = {"path": path, "dataBase64": encode_b64(data)}
        if append:
            params["append"] = True
        await self._call("fs/writeFile", params)

    async def append_file(self, path: str, data: bytes) -> None:
        """Append ``data`` to the file, creating it."""
        await self.write_file(path, data, append=True)

    async def create_directory(self, path: str, *, recursive: bool = False) -> None:
        """Create a directory (and its parents with ``recursive``)."""
        await self._call("fs/createDirectory", {"path": path, "recursive": recursive})

    async def metadata(self, path: str) -> Metadata:
        """What the path is, its times and size (symlinks followed)."""
        r = await self._call("fs/getMetadata", {"path": path})
        try:
            return Metadata(
                is_directory=bool(r["isDirectory"]),
                is_file=bool(r["isFile"]),
                is_symlink=bool(r["isSymlink"]),
                created_at_ms=int(r["createdAtMs"]),
                modified_at_ms=int(r["modifiedAtMs"]),
                size=int(r.get("size", 0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ProtocolError(f"bad fs/getMetadata result: {r!r}") from err

    async def read_directory(self, path: str) -> list[DirectoryEntry]:
        """The directory's entries."""
        r = await self._call("fs/readDirectory", {"path": path})
        try:
            return [
                DirectoryEntry(str(e["fileName"]), bool(e["isDirectory"]), bool(e["isFile"]))
                for e in r["entries"]
            ]
        except (KeyError, TypeError) as err:
            raise ProtocolError(f"bad fs/readDirectory result: {r!r}") from err

    async def remove(self, path: str, *, recursive: bool = False, force: bool = False) -> None:
        """Remove a file, or a directory tree with ``recursive``; ``force``
        ignores a missing path."""
        await self._call("fs/remove", {"path": path, "recursive": recursive, "force": force})

    async def copy(self, source: str, destination: str, *, recursive: bool = False) -> None:
        """Copy a file, or a directory tree with ``recursive``, on the server."""
        await self._call(
            "fs/copy",
            {"sourcePath": source, "destinationPath": destination, "recursive": recursive},
        )

    async def exists(self, path: str) -> bool:
        """Whether the path exists."""
        try:
            await self.metadata(path)
        except NotFoundError:
            return False
        return True

    async def rename(self, source: str, destination: str) -> None:
        """Move ``source`` to ``destination`` with one atomic ``rename(2)``
        (``fs/rename``), replacing a destination file or empty directory.
        Across filesystems it fails (:class:`~execd.FailedError`, EXDEV)."""
        await self._call("fs/rename", {"sourcePath": source, "destinationPath": destination})

    def walk(
        self,
        path: str,
        *,
        metadata: bool = False,
        include_symlinks: bool = False,
        include_other: bool = False,
        page_size: int = 1000,
        max_depth: int = 64,
        max_entries: int = 100_000,
        max_directories: int = 10_000,
        follow_directory_symlinks: bool = False,
    ) -> Walk:
        """Every entry below ``path``, breadth first, by name (``fs/walk``),
        fetched ``page_size`` at a time: ``async for entry in env.fs.walk(p)``.

        ``metadata`` adds each entry's size, mode and modification time (of
        a symlink itself); ``include_symlinks`` lists symlinks (not followed)
        and ``include_other`` fifos, sockets and devices. The ``max_*``
        bounds stop the walk (:attr:`Walk.truncated`); the server cuts them
        to its own limits. A page lists each entry once if the tree does not
        change while the walk goes on.
        """
        params: dict[str, Any] = {
            "path": path,
            "options": {
                "maxDepth": max_depth,
                "maxDirectories": max_directories,
                "maxEntries": max_entries,
                "followDirectorySymlinks": follow_directory_symlinks,
            },
            "limit": page_size,
        }
        extensions = {"metadata": metadata, "includeSymlinks": include_symlinks, "includeOther": include_other}
        params.update({name: True for name, wanted in extensions.items() if wanted})
        return Walk(self._connection, params)

    def watch(self, path: str, *, recursive: bool = False) -> FsWatch:
        """Changes under ``path`` as batches (``fs/watch``):
        ``async with env.fs.watch(p, recursive=True) as w: async for batch in w``.
        Leaving the block sends ``fs/unwatch``. Batches are queued until
        taken; the server coalesces and, past its bound, reports ``overflow``.
        """
        return FsWatch(self._connection, path, recursive)
