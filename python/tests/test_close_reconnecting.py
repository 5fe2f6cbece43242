"""Closing a client while it reconnects ends its session at once, as a
clean close does, rather than leaving it detached on the server for the
detach grace (120 s here): the client takes the session over on a
connection of its own only to close it, so the server terminates the
session's processes now. Checked with the processes' pids (sessions are
private: no other connection can list them); with nothing reachable the
close still returns within the policy's attempt timeout."""

from __future__ import annotations

import asyncio
import os
import time

import execd
from conftest import Server, run_async
from proxy import FaultProxy
from test_resume import eventually, port_of

# One attempt at once, then a long backoff: the client stays reconnecting.
SLOW = execd.ReconnectPolicy(first_delay=30, max_delay=30, give_up_after=60, attempt_timeout=3)


def gone(pid: int) -> bool:
    """Whether no process has ``pid`` (it ended and was reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def start_sleeper(env: execd.Environment) -> int:
    """Start ``sleep 60`` (via a shell that prints its pid) and return the pid."""
    p = await env.start(["bash", "-c", "echo $$; exec sleep 60"])
    first = await p.events().__anext__()
    assert isinstance(first, execd.Output)
    return int(first.data)


def test_close_while_reconnecting_ends_the_session_now(server: Server) -> None:
    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            env = await execd.connect(proxy.url, token=server.token, reconnect=SLOW)
            pids = [await start_sleeper(env), await start_sleeper(env)]
            proxy.refusing = True
            proxy.cut()
            await eventually(lambda: env.connection.state == "reconnecting", "the client reconnecting")
            waiting = asyncio.ensure_future(env.run(["true"]))  # Waits for the resume.
            accepted = proxy.accepted
            proxy.refusing = False  # The client waits out its backoff: still reconnecting.
            await asyncio.wait_for(env.close(), 10)
            assert env.connection.state == "closed"
            assert proxy.accepted == accepted + 1, "the close resumed the session to end it"
            for pid in pids:
                await eventually(lambda: gone(pid), f"pid {pid} ended with its session", timeout=15)
            try:
                await asyncio.wait_for(waiting, 5)
            except execd.ConnectionLostError as err:
                assert "closed" in err.reason
            else:
                raise AssertionError("a call waiting for the resume got an answer after the close")

    run_async(body())


def test_close_while_nothing_is_reachable_returns_in_bounded_time(server: Server) -> None:
    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            env = await execd.connect(proxy.url, token=server.token, reconnect=SLOW)
            pid = await start_sleeper(env)
            proxy.refusing = True
            proxy.cut()
            await eventually(lambda: env.connection.state == "reconnecting", "the client reconnecting")
            started = time.monotonic()
            await asyncio.wait_for(env.close(), 10)
            assert time.monotonic() - started < SLOW.attempt_timeout + 2
            assert env.connection.state == "closed"
            assert proxy.accepted == 1  # Its one last attempt was refused too.
            assert not gone(pid)  # Left to the server's grace: nothing could reach it.
            os.kill(pid, 9)

    run_async(body())
