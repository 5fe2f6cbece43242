"""Flow control and the session's process list against a real server: a
windowed process stops at exactly its window while nobody takes its
events, loses nothing when they are taken (acknowledged as consumed), and
``process/list`` describes running, exited/closed, terminal and windowed
processes; the codex-dialect fields ``sandboxDenied`` comes through
``process/read``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import execd
from conftest import Server, run_async

WINDOW = 64 * 1024


def test_windowed_process_stalls_until_consumed(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    expected = b"".join(b"%d\n" % i for i in range(1, 1_000_001))  # 6.9 MB: more than window and pipe

    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            p = await env.start(["bash", "-c", f"seq 1 1000000; touch {marker}"], output_window=WINDOW)

            async def unread() -> int:
                return sum(len(c.data) for c in (await p.read(0)).chunks)

            deadline = time.monotonic() + 10
            while await unread() < WINDOW:
                assert time.monotonic() < deadline, "the window never filled"
                await asyncio.sleep(0.02)
            # Stopped at exactly the window, and it stays there.
            await asyncio.sleep(0.3)
            assert await unread() == WINDOW
            assert not marker.exists()
            [listed] = [i for i in await env.list_processes() if i.process_id == p.id]
            assert (listed.state, listed.output_window) == ("running", WINDOW)
            assert listed.acked_seq == 0
            got = bytearray()
            async for event in p:
                if isinstance(event, execd.Output):
                    got.extend(event.data)
            assert bytes(got) == expected
            assert marker.exists()
            [listed] = [i for i in await env.list_processes() if i.process_id == p.id]
            assert listed.state == "closed" and listed.acked_seq is not None and listed.acked_seq > 0

    run_async(body())


def test_unwindowed_process_runs_ahead(server: Server, tmp_path: Path) -> None:
    """The same program without a window finishes while nobody reads."""
    marker = tmp_path / "finished"

    async def body() -> None:
        async with execd.connect(server.url, token=server.token, output_window=None) as env:
            p = await env.start(["bash", "-c", f"seq 1 100000; touch {marker}"])
            assert (await p.wait(10)).exit_code == 0 and marker.exists()
            [listed] = [i for i in await env.list_processes() if i.process_id == p.id]
            assert listed.output_window is None and listed.acked_seq is None

    run_async(body())


def test_process_list_shapes(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            assert await env.list_processes() == []
            done = await env.start(["bash", "-c", "echo x; exit 7"], output_window=0)
            async for _ in done:
                pass
            killed = await env.start(["sleep", "60"], output_window=0)
            await killed.signal("KILL")
            await killed.wait(10)
            running = await env.start(["sleep", "60"], tty=True, output_window=WINDOW)
            listed = {i.process_id: i for i in await env.list_processes()}
            assert list(listed) == [done.id, killed.id, running.id]  # start order
            assert listed[done.id] == execd.ProcessInfo(done.id, "closed", 4, False, exit_code=7)
            assert listed[killed.id].exit_code == -1 and listed[killed.id].signal == "SIGKILL"
            assert listed[killed.id].state in ("exited", "closed")
            assert listed[running.id] == execd.ProcessInfo(
                running.id, "running", 1, True, output_window=WINDOW, acked_seq=0
            )
            await running.terminate()
            read = await done.read(0)
            assert read.sandbox_denied is False and read.exited_seq == 2 and read.closed_seq == 3
            assert done.sandbox_type is None

    run_async(body())
