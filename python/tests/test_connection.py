"""Connecting: the token's sources, refusals, "cannot connect" for a URL that
never answered, a server that goes away (every waiter gets a clear error,
nothing hangs), a seq gap, and the synchronous wrapper."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

import execd
import execd.sync
from conftest import Server, run_async, start_server


def test_token_sources(
    server: Server, execd_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        with pytest.raises(execd.UnauthorizedError) as none_sent:
            await execd.connect(server.url)
        assert none_sent.value.sent_token is False
        assert "requires a token" in str(none_sent.value)
        with pytest.raises(execd.UnauthorizedError) as wrong:
            await execd.connect(server.url, token="wrong-token")
        assert wrong.value.sent_token is True and "refused the token" in str(wrong.value)
        assert isinstance(wrong.value, execd.ConnectError)
        monkeypatch.setenv("EXECD_TOKEN", server.token or "")
        async with execd.connect(server.url) as env:
            assert env.info.session_id and env.info.server_version

    run_async(body())


def test_default_token_file(execd_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server without token settings makes the default token file; a client
    with the same state directory finds it (loopback only)."""
    state = tmp_path / "shared-state"
    local = start_server(execd_bin, state)
    try:
        token_file = state / "execd" / "token"
        assert token_file.stat().st_mode & 0o077 == 0
        monkeypatch.setenv("XDG_STATE_HOME", str(state))

        async def body() -> None:
            async with execd.connect(local.url) as env:
                assert (await env.run(["true"])).exit_code == 0
            token_file.chmod(0o644)
            with pytest.raises(execd.ConnectError, match="open to other users"):
                await execd.connect(local.url)

        run_async(body())
    finally:
        local.kill()


def test_cannot_connect_is_not_connection_lost() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on that port now.

    async def body() -> None:
        started = time.monotonic()
        with pytest.raises(execd.ConnectError, match=f"cannot connect to ws://127.0.0.1:{port}"):
            await execd.connect(f"ws://127.0.0.1:{port}", token="t")
        assert time.monotonic() - started < 10
        with pytest.raises(execd.ConnectError, match="not a WebSocket URL"):
            await execd.connect("http://127.0.0.1:1", token="t")

    run_async(body())


def test_server_going_away_fails_every_waiter(execd_bin: Path, tmp_path: Path) -> None:
    doomed = start_server(execd_bin, tmp_path / "doomed", token=secrets.token_hex(16))

    async def body() -> None:
        env = await execd.connect(doomed.url, token=doomed.token)
        p = await env.start(["bash", "-c", "echo up; exec sleep 60"])
        events = p.events()
        assert await events.__anext__() == execd.Output(1, "stdout", b"up\n")
        next_event = asyncio.ensure_future(events.__anext__())
        waiting = asyncio.ensure_future(p.wait())
        long_poll = asyncio.ensure_future(p.read(1, wait_ms=60_000))
        # Requests go out in order: once this one is answered, the long poll is out too.
        assert await env.fs.exists("/")
        await asyncio.get_running_loop().run_in_executor(None, doomed.kill)
        for pending in (next_event, waiting, long_poll):
            with pytest.raises(execd.ConnectionLostError) as lost:
                await asyncio.wait_for(pending, 10)
            assert "connection lost" in str(lost.value)
        with pytest.raises(execd.ConnectionLostError):
            await env.run(["true"])
        with pytest.raises(execd.ConnectionLostError):
            await env.fs.read_file("/etc/hostname")
        await env.close()

    try:
        run_async(body(), timeout=30)
    finally:
        doomed.kill()


def test_a_seq_gap_raises() -> None:
    """A peer that skips a seq: the process's events end with SeqGapError."""

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            message: dict[str, Any] = json.loads(frame)
            method = message.get("method")
            if method == "initialize":
                await ws.send(json.dumps({"id": message["id"], "result": {"sessionId": "s"}}))
            elif method == "process/start":
                pid = message["params"]["processId"]
                await ws.send(json.dumps({"id": message["id"], "result": {"processId": pid}}))
                for seq in (1, 3):
                    params = {"processId": pid, "seq": seq, "stream": "stdout", "chunk": "aGkK"}
                    await ws.send(json.dumps({"method": "process/output", "params": params}))

    async def body() -> None:
        async with serve(handler, "127.0.0.1", 0) as fake:
            port = fake.sockets[0].getsockname()[1]
            async with execd.connect(f"ws://127.0.0.1:{port}", token="t") as env:
                p = await env.start(["anything"])
                events = p.events()
                assert await events.__anext__() == execd.Output(1, "stdout", b"hi\n")
                with pytest.raises(execd.SeqGapError, match="expected event seq 2, got 3"):
                    await events.__anext__()
                with pytest.raises(execd.SeqGapError):
                    await p.wait()

    run_async(body())


def test_sync_wrapper(server: Server) -> None:
    with execd.sync.connect(server.url, token=server.token) as env:
        r = env.run(["bash", "-c", "cat; echo err >&2; exit 4"], input=b"in")
        assert (r.exit_code, r.stdout, r.stderr) == (4, b"in", b"err\n")
        p = env.start(["bash", "-c", "read x; echo [$x]"])
        assert p.write(b"typed\n") == "accepted"
        events = list(p)
        assert b"".join(e.data for e in events if isinstance(e, execd.Output)) == b"[typed]\n"
        assert isinstance(events[-1], execd.Closed) and p.wait() == execd.ExitStatus(0, None)
        env.fs.write_file("/tmp/execd-py-sync", b"sync")
        assert env.fs.read_file("/tmp/execd-py-sync") == b"sync"
        env.fs.remove("/tmp/execd-py-sync")
        with pytest.raises(execd.NotFoundError):
            env.fs.read_file("/tmp/execd-py-sync")
