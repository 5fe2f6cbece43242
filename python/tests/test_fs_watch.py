"""``fs.watch`` through a real server on real files: creating, writing,
renaming and removing under a recursive watch each arrive as their change;
a watch outlives a lost connection (the session is resumed);
leaving the block unwatches (iteration ends, the server no longer has it);
a missing path fails; changes past the server's bound arrive as an
``overflow`` change, not silently lost."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import execd
from conftest import Server, run_async, start_server
from proxy import FaultProxy

WAIT = 10.0


async def until(watch: execd.FsWatch, wanted: Callable[[execd.FsChange], bool]) -> list[execd.FsChange]:
    """Every change up to and including the first one ``wanted`` (bounded)."""
    seen: list[execd.FsChange] = []
    while True:
        try:
            batch = await watch.next_batch(WAIT)
        except asyncio.TimeoutError:
            raise AssertionError(f"no wanted change within {WAIT} s; saw {seen}") from None
        seen.extend(batch)
        if any(wanted(change) for change in batch):
            return seen


def test_create_modify_rename_remove_and_unwatch(server: Server, tmp_path: Path) -> None:
    root = str(tmp_path)

    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            async with env.fs.watch(root, recursive=True) as watch:
                assert watch.watched_paths == 1
                (tmp_path / "f").write_bytes(b"one")
                await until(watch, lambda c: (c.kind, c.path) == ("created", f"{root}/f"))
                with open(tmp_path / "f", "ab") as file:
                    file.write(b"two")
                await until(watch, lambda c: (c.kind, c.path) == ("modified", f"{root}/f"))
                os.rename(tmp_path / "f", tmp_path / "g")
                moved = await until(watch, lambda c: c.kind == "renamed")
                renamed = moved[-1]
                assert (renamed.from_path, renamed.to_path, renamed.path) == (f"{root}/f", f"{root}/g", f"{root}/g")
                # A directory created inside is watched too; a write into it is seen.
                await env.fs.create_directory(f"{root}/sub")
                await until(watch, lambda c: (c.kind, c.path) == ("created", f"{root}/sub"))
                await env.fs.write_file(f"{root}/sub/inner", b"x")
                await until(watch, lambda c: c.path == f"{root}/sub/inner")
                os.unlink(tmp_path / "g")
                await until(watch, lambda c: (c.kind, c.path) == ("removed", f"{root}/g"))
                watch_id = watch.watch_id
            # Left the block: unwatched; iteration ends after what was already received.
            async for _ in watch:
                pass
            (tmp_path / "after").write_bytes(b"unseen")
            assert await env.connection.call("fs/unwatch", {"watchId": watch_id}) == {"removed": False}

            with pytest.raises(execd.NotFoundError):
                await env.fs.watch(f"{root}/nope").start()
            # Not recursive: a change two levels down is not reported, one level down is.
            async with env.fs.watch(root) as flat:
                (tmp_path / "sub" / "deep").write_bytes(b"x")
                (tmp_path / "shallow").write_bytes(b"x")
                seen = await until(flat, lambda c: c.path == f"{root}/shallow")
                assert all(not c.path.startswith(f"{root}/sub/") for c in seen), seen

    run_async(body())


def test_changes_past_the_bound_arrive_as_overflow(execd_bin: Path, tmp_path: Path) -> None:
    bounded = start_server(
        execd_bin, tmp_path / "server", ["--max-fs-watch-events", "4", "--fs-watch-coalesce-ms", "300"], token="t" * 32
    )
    watched = tmp_path / "watched"
    watched.mkdir()

    async def body() -> None:
        async with execd.connect(bounded.url, token=bounded.token) as env:
            async with env.fs.watch(str(watched)) as watch:
                for number in range(40):
                    (watched / f"file-{number}").write_bytes(b"x")
                seen = await until(watch, lambda c: c.kind == "overflow")
                overflow = [c for c in seen if c.kind == "overflow"][0]
                assert (overflow.path, overflow.limit) == (str(watched), "maxFsWatchEvents")
                assert len(seen) < 40

    try:
        run_async(body())
    finally:
        bounded.kill()


def test_a_watch_outlives_a_lost_connection(server: Server, tmp_path: Path) -> None:
    fast = execd.ReconnectPolicy(first_delay=0.02, max_delay=0.2, give_up_after=30, attempt_timeout=5)

    async def body() -> None:
        async with FaultProxy(int(server.url.rsplit(":", 1)[1])) as proxy:
            async with execd.connect(proxy.url, token=server.token, reconnect=fast) as env:
                async with env.fs.watch(str(tmp_path)) as watch:
                    (tmp_path / "before").write_bytes(b"x")
                    await until(watch, lambda c: c.path == f"{tmp_path}/before")
                    proxy.cut()
                    # The next call waits for the resume, then goes through.
                    await env.fs.write_file(f"{tmp_path}/after", b"y")
                    assert env.connection.resumes >= 1
                    await until(watch, lambda c: (c.kind, c.path) == ("created", f"{tmp_path}/after"))
                assert await env.connection.call("fs/unwatch", {"watchId": watch.watch_id}) == {"removed": False}

    run_async(body())
