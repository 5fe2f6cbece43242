"""Bulk file streams through a real server on real files: large writes go
through ``fs/upload`` and large reads (over ``--max-read-bytes``) through
``fs/download``, byte for byte, within a small ``--transfer-window``;
empty files, file objects and whole trees move; a missing path fails
clearly and a download abandoned half way leaves the connection working."""

from __future__ import annotations

import json
from collections.abc import Iterator
import os
from pathlib import Path

import pytest

import execd
from conftest import Server, run_async, start_server


@pytest.fixture
def small_window(execd_bin: Path, tmp_path: Path) -> Iterator[Server]:
    """A server with a 2-piece window and 1 MB whole-file reads."""
    running = start_server(
        execd_bin, tmp_path / "server", ["--transfer-window", "2", "--max-read-bytes", "1000000"], token="t" * 32
    )
    yield running
    running.kill()


def test_large_files_move_as_streams(small_window: Server, tmp_path: Path) -> None:
    data = os.urandom(9 * (1 << 20) + 12345)  # ten pieces, more than the window
    sent: list[str] = []
    binary_sent = [0]

    def on_frame(direction: str, frame: str | bytes) -> None:
        if direction == "sent" and isinstance(frame, bytes):
            binary_sent[0] += 1
        elif direction == "sent" and isinstance(frame, str):
            sent.append(str(json.loads(frame).get("method")))

    async def body() -> None:
        async with execd.connect(small_window.url, token=small_window.token, on_frame=on_frame) as env:
            assert env.info.capabilities.get("fileTransfers") is True
            await env.fs.write_file(f"{tmp_path}/big", data)
            assert (tmp_path / "big").read_bytes() == data
            assert "fs/upload" in sent and "fs/writeFile" not in sent and binary_sent[0] == 10
            assert [n for n in os.listdir(tmp_path) if n.endswith(".part")] == []

            assert await env.fs.read_file(f"{tmp_path}/big") == data
            assert "fs/download" in sent
            # Small files still take one call each.
            await env.fs.write_file(f"{tmp_path}/small", b"tiny")
            assert await env.fs.read_file(f"{tmp_path}/small") == b"tiny"
            assert sent.count("fs/writeFile") == 1 and sent.count("fs/readFile") == 2

            assert await env.fs.upload(f"{tmp_path}/empty", b"") == 0
            assert (tmp_path / "empty").read_bytes() == b""
            assert b"".join([p async for p in env.fs.download(f"{tmp_path}/empty")]) == b""
            with open(tmp_path / "big", "rb") as source:
                assert await env.fs.upload(f"{tmp_path}/copy", source) == len(data)
            assert (tmp_path / "copy").read_bytes() == data

    run_async(body())


def test_trees_failures_and_abandoned_downloads(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "a" / "b").mkdir(parents=True)
    (source / "a" / "b" / "f").write_bytes(b"deep")
    (source / "top").write_bytes(os.urandom(3 << 20))
    (source / "link").symlink_to("top")

    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            tar = b"".join([p async for p in env.fs.download(str(source), format="tree")])
            await env.fs.upload(f"{tmp_path}/copy", tar, format="tree")
            assert (tmp_path / "copy" / "a" / "b" / "f").read_bytes() == b"deep"
            assert (tmp_path / "copy" / "top").read_bytes() == (source / "top").read_bytes()
            assert os.readlink(tmp_path / "copy" / "link") == "top"

            with pytest.raises(execd.NotFoundError):
                async for _ in env.fs.download(f"{tmp_path}/nope"):
                    pass
            with pytest.raises(execd.NotFoundError):
                await env.fs.upload(f"{tmp_path}/no-dir/f", b"x")

            pieces = env.fs.download(str(source / "top"))
            first = await pieces.__anext__()
            assert first == (source / "top").read_bytes()[: len(first)]
            await pieces.aclose()  # fs/transferCancel
            assert await env.fs.read_file(f"{source}/a/b/f") == b"deep"

    run_async(body())
