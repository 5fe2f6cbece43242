"""Sessions that survive the network, through a fault-injecting proxy
(tests/proxy.py) to a real server: a stream cut several times mid-frame
arrives byte-exact with every seq once; a write whose answer was lost is
applied once after the resume, a signal in flight fails with
CallInterruptedError; a half-open connection is found by the keepalive and
resumed; a session the server let expire raises SessionExpiredError, and
one that cannot be reached within the policy ResumeFailedError."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

import pytest

import execd
from conftest import Server, run_async, start_server
from proxy import FaultProxy

FAST = execd.ReconnectPolicy(first_delay=0.02, max_delay=0.2, give_up_after=30, attempt_timeout=5)


def port_of(server: Server) -> int:
    """The TCP port of a server's URL."""
    return int(server.url.rsplit(":", 1)[1])


async def eventually(check: object, what: str, timeout: float = 10.0) -> None:
    """Poll ``check()`` (sync or async) until true, failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


def test_stream_cut_mid_frame_arrives_whole(server: Server) -> None:
    expected = b"".join(b"%d\n" % i for i in range(1, 400_001))  # 2.6 MB

    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            async with execd.connect(proxy.url, token=server.token, reconnect=FAST) as env:
                session = env.info.session_id
                # A window keeps the stream live while it is consumed (and cut).
                p = await env.start(["seq", "1", "400000"], output_window=128 * 1024)
                got = bytearray()
                seqs = []
                cuts_at = [100_000, 700_000, 1_300_000, 1_900_000, 2_400_000]
                async for event in p:
                    seqs.append(event.seq)
                    if isinstance(event, execd.Output):
                        got.extend(event.data)
                        if cuts_at and len(got) >= cuts_at[0]:
                            cuts_at.pop(0)
                            proxy.cut_after(12_345)  # mid-frame, a little further on
                assert bytes(got) == expected
                assert seqs == list(range(1, len(seqs) + 1))
                assert (await p.wait()).exit_code == 0
                assert env.connection.resumes == 5, f"only {env.connection.resumes} resumes"
                assert env.info.session_id == session
                assert (await env.run(["echo", "after"])).stdout == b"after\n"

    run_async(body())


def test_write_in_flight_applied_once_and_signal_interrupted(server: Server, tmp_path: Path) -> None:
    sink = tmp_path / "lines"
    script = f"trap 'echo usr1 >> {sink}' USR1; while read -r l; do echo \"$l\" >> {sink}; done"

    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            async with execd.connect(proxy.url, token=server.token, reconnect=FAST) as env:
                p = await env.start(["bash", "-c", script])
                assert await p.write(b"one\n") == "accepted"
                await eventually(lambda: sink.exists() and sink.read_bytes() == b"one\n", "first line")
                # The server takes the write, its answer is held in the proxy, then the cut.
                proxy.stall(up=False)
                write = asyncio.ensure_future(p.write(b"two\n"))
                await eventually(lambda: sink.read_bytes() == b"one\ntwo\n", "second line applied")
                signal = asyncio.ensure_future(p.signal("USR1"))
                await eventually(lambda: sink.read_bytes().endswith(b"usr1\n"), "signal delivered")
                proxy.cut()
                assert await asyncio.wait_for(write, 10) == "accepted"
                with pytest.raises(execd.CallInterruptedError, match="process/signal was interrupted"):
                    await asyncio.wait_for(signal, 10)
                assert env.connection.resumes == 1
                # Same id again, explicitly: remembered, not written.
                assert await p.write(b"three\n", write_id="w-3") == "accepted"
                assert await p.write(b"three\n", write_id="w-3") == "accepted"
                await p.close_stdin()
                assert (await p.wait(10)).exit_code == 0
                assert sink.read_bytes() == b"one\ntwo\nusr1\nthree\n"

    run_async(body())


def test_keepalive_finds_a_half_open_connection(server: Server) -> None:
    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            keepalive = execd.Keepalive(interval=0.2, timeout=2.0)
            async with execd.connect(
                proxy.url, token=server.token, reconnect=FAST, keepalive=keepalive
            ) as env:
                p = await env.start(["bash", "-c", "read x; echo got-$x"])
                proxy.stall()  # Nothing moves, nothing closes.
                started = time.monotonic()
                assert await p.write(b"it\n") == "accepted"  # waits out the resume
                assert time.monotonic() - started < 10
                assert env.connection.resumes >= 1 and proxy.accepted >= 2
                out = b"".join([e.data async for e in p if isinstance(e, execd.Output)])
                assert out == b"got-it\n"

    run_async(body())


def test_expired_session_raises_typed_error(execd_bin: Path, tmp_path: Path) -> None:
    short = start_server(execd_bin, tmp_path / "short", ["--detach-grace", "1"], secrets.token_hex(16))

    async def body() -> None:
        async with FaultProxy(port_of(short)) as proxy:
            env = await execd.connect(proxy.url, token=short.token, reconnect=FAST)
            p = await env.start(["bash", "-c", "echo $$; exec sleep 60"])
            first = await p.events().__anext__()
            assert isinstance(first, execd.Output)
            pid = int(first.data)
            proxy.refusing = True
            proxy.cut()

            def gone() -> bool:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return True
                return False

            # The grace passes: the server ends the session and its process.
            await eventually(gone, f"pid {pid} ended after the detach grace")
            proxy.refusing = False
            with pytest.raises(execd.SessionExpiredError, match="unknown or expired session") as err:
                await asyncio.wait_for(p.wait(), 20)
            assert err.value.session_id == env.info.session_id
            assert isinstance(err.value, execd.ConnectionLostError)
            with pytest.raises(execd.SessionExpiredError):
                await env.run(["true"])
            assert env.connection.state == "closed"
            await env.close()

    try:
        run_async(body())
    finally:
        short.kill()


def test_resume_gives_up_after_the_policy(server: Server) -> None:
    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            policy = execd.ReconnectPolicy(first_delay=0.02, max_delay=0.1, give_up_after=1.0)
            env = await execd.connect(proxy.url, token=server.token, reconnect=policy)
            p = await env.start(["sleep", "60"])
            proxy.refusing = True
            proxy.cut()
            started = time.monotonic()
            with pytest.raises(execd.ResumeFailedError, match="could not resume session") as err:
                await asyncio.wait_for(p.wait(), 10)
            assert not isinstance(err.value, execd.SessionExpiredError)
            assert time.monotonic() - started < 5
            await env.close()

    run_async(body())


def test_without_reconnect_a_cut_ends_the_session(server: Server) -> None:
    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            env = await execd.connect(proxy.url, token=server.token, reconnect=None)
            p = await env.start(["sleep", "60"])
            proxy.cut()
            with pytest.raises(execd.ConnectionLostError, match="without a close frame"):
                await asyncio.wait_for(p.wait(), 10)
            assert proxy.accepted == 1
            await env.close()

    run_async(body())


def test_terminal_session_cut_while_typing(server: Server) -> None:
    """Typed lines go in once each across cuts, and the screen loses nothing."""
    lines = [f"line{i}" for i in range(20)]

    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            async with execd.connect(proxy.url, token=server.token, reconnect=FAST) as env:
                p = await env.start(["cat"], tty=True)
                screen = bytearray()

                async def watch() -> None:
                    async for event in p:
                        if isinstance(event, execd.Output):
                            screen.extend(event.data)

                watcher = asyncio.ensure_future(watch())
                for i, line in enumerate(lines):
                    if i in (5, 12):
                        proxy.cut()  # the next write waits for the resume
                    assert await p.write(f"{line}\n".encode()) == "accepted"
                await p.close_stdin()
                await asyncio.wait_for(watcher, 20)
                assert (await p.wait()).exit_code == 0
                assert env.connection.resumes == 2
                for line in lines:  # the terminal's echo, then cat's copy
                    assert screen.count(f"{line}\r\n".encode()) == 2, (line, bytes(screen))

    run_async(body())
