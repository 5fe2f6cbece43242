"""Every filesystem operation through a real server, and its errors."""

from __future__ import annotations

import uuid

import pytest

import execd
from conftest import Server, run_async


def test_every_fs_operation(server: Server) -> None:
    root = f"/tmp/execd-py-fs-{uuid.uuid4().hex}"
    data = bytes(range(256)) * 100

    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            fs = env.fs
            await fs.create_directory(f"{root}/a/b", recursive=True)
            with pytest.raises(execd.ServerError):
                await fs.create_directory(f"{root}/x/y")  # parent missing, not recursive
            await fs.write_file(f"{root}/a/b/file", data)
            assert await fs.read_file(f"{root}/a/b/file") == data
            assert await fs.read_range(f"{root}/a/b/file", 10, 5) == (data[10:15], False)
            assert await fs.read_range(f"{root}/a/b/file", len(data) - 3, 100) == (data[-3:], True)
            await fs.append_file(f"{root}/a/b/file", b"tail")
            assert await fs.read_file(f"{root}/a/b/file") == data + b"tail"
            await fs.write_file(f"{root}/a/b/file", b"short")
            assert await fs.read_file(f"{root}/a/b/file") == b"short"

            meta = await fs.metadata(f"{root}/a/b/file")
            assert (meta.is_file, meta.is_directory, meta.is_symlink, meta.size) == (True, False, False, 5)
            assert meta.modified_at_ms > 0
            assert (await fs.metadata(f"{root}/a")).is_directory
            assert await fs.exists(f"{root}/a") and not await fs.exists(f"{root}/nope")

            await fs.write_file(f"{root}/a/top", b"1")
            entries = sorted(await fs.read_directory(f"{root}/a"), key=lambda e: e.file_name)
            assert entries == [
                execd.DirectoryEntry("b", True, False),
                execd.DirectoryEntry("top", False, True),
            ]

            await fs.copy(f"{root}/a/top", f"{root}/copied")
            assert await fs.read_file(f"{root}/copied") == b"1"
            with pytest.raises(execd.InvalidInputError):
                await fs.copy(f"{root}/a", f"{root}/tree")  # a directory needs recursive
            await fs.copy(f"{root}/a", f"{root}/tree", recursive=True)
            assert await fs.read_file(f"{root}/tree/b/file") == b"short"

            await fs.remove(f"{root}/copied")
            assert not await fs.exists(f"{root}/copied")
            await fs.remove(f"{root}/nope", force=True)
            await fs.remove(root, recursive=True)
            assert not await fs.exists(root)

    run_async(body())


def test_fs_errors_name_the_path(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            with pytest.raises(execd.NotFoundError, match="/no/such/file-xyz") as missing:
                await env.fs.read_file("/no/such/file-xyz")
            assert missing.value.code == -32004
            with pytest.raises(execd.InvalidInputError, match="relative-path"):
                await env.fs.read_file("relative-path")
            with pytest.raises(execd.NotFoundError):
                await env.fs.remove("/no/such/file-xyz")
            with pytest.raises(execd.InvalidInputError, match="directory|regular"):
                await env.fs.read_file("/tmp")

    run_async(body())
