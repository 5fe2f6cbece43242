"""The server's filesystem: the ``fs/*`` methods with bytes in and out.
Every path is absolute; a missing path raises :class:`~execd.NotFoundError`.
"""

from __future__ import annotations

from typing import Any

from ._wire import decode_b64, encode_b64
from .connection import Connection
from .errors import NotFoundError, ProtocolError
from .types import DirectoryEntry, Metadata

__all__ = ["FileSystem"]


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
        """The whole file (up to the server's ``maxReadBytes``; see :meth:`read_range`)."""
        result = await self._call("fs/readFile", {"path": path})
        return decode_b64(result.get("dataBase64"), f"fs/readFile {path}")

    async def read_range(self, path: str, offset: int, length: int) -> tuple[bytes, bool]:
        """Up to ``length`` bytes from ``offset``, and whether that reached the end."""
        result = await self._call("fs/readFile", {"path": path, "offset": offset, "length": length})
        data = decode_b64(result.get("dataBase64"), f"fs/readFile {path}")
        return data, bool(result.get("eof", False))

    async def write_file(self, path: str, data: bytes, *, append: bool = False) -> None:
        """Replace the file with ``data`` (or append to it), creating it."""
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
