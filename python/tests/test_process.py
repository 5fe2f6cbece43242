"""Processes through a real server: exit codes, stdout and stderr apart,
stdin, a PTY, signals, byte-exact output (binary frames and JSON base64),
1,000 lines in order, timeouts and the server's errors."""

from __future__ import annotations

import asyncio

import pytest

import execd
from conftest import Server, run_async


def test_exit_codes_and_streams_apart(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            r = await env.run(["bash", "-c", "echo hi; echo oops >&2; exit 3"], cwd="/tmp", input=b"", timeout=30)
            assert (r.exit_code, r.stdout, r.stderr, r.signal) == (3, b"hi\n", b"oops\n", None)
            assert (await env.run(["true"])).exit_code == 0
            killed = await env.run(["bash", "-c", "kill -KILL $$"])
            assert (killed.exit_code, killed.signal) == (-1, "SIGKILL")
            cwd = await env.run(["pwd"], cwd="/usr")
            assert cwd.stdout == b"/usr\n"

    run_async(body())


def test_stdin_bytes_reach_the_program_exactly(server: Server) -> None:
    data = bytes(range(256)) * 4
    big = bytes(i % 251 for i in range(12 * 1024 * 1024))

    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            r = await env.run(["cat"], input=data)
            assert r.stdout == data
            # Larger than the server's stdin queue (8 MiB): written in pieces.
            counted = await env.run(["wc", "-c"], input=big, timeout=60)
            assert counted.stdout.strip() == str(len(big)).encode()
            p = await env.start(["bash", "-c", "read line; echo got:$line; exit 5"])
            assert await p.write(b"abc\n") == "accepted"
            status = await p.wait(timeout=30)
            assert status == execd.ExitStatus(5, None)
            outputs = [e.data for e in [e async for e in p] if isinstance(e, execd.Output)]
            assert b"".join(outputs) == b"got:abc\n"
            no_stdin = await env.start(["sleep", "5"], stdin=False)
            assert await no_stdin.write(b"x") == "stdinClosed"
            await no_stdin.terminate()

    run_async(body())


def test_pty_echo_size_and_resize(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            p = await env.start(
                ["bash", "-c", "stty size; read x; stty size; echo done:$x"], tty=True, size=(30, 100)
            )
            seen = bytearray()
            events = p.events()
            while b"30 100" not in seen:
                event = await events.__anext__()
                assert isinstance(event, execd.Output) and event.stream == "pty"
                seen += event.data
            await p.resize(40, 120)
            await p.write(b"go\n")
            async for event in events:
                if isinstance(event, execd.Output):
                    seen += event.data
            assert b"40 120" in seen and b"done:go" in seen, seen
            assert p.exit_status == execd.ExitStatus(0, None)
            tty = await env.run(["bash", "-c", "test -t 0 && test -t 1 && echo on-a-tty"], tty=True)
            assert b"on-a-tty" in tty.stdout and tty.stderr == b""

    run_async(body())


def test_signals_and_terminate(server: Server) -> None:
    script = 'trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.05; done'

    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            p = await env.start(["bash", "-c", script])
            events = p.events()
            first = await events.__anext__()
            assert isinstance(first, execd.Output) and first.data == b"ready\n"
            assert await p.signal("USR1") is True
            assert await p.wait(timeout=30) == execd.ExitStatus(7, None)
            rest = [e async for e in events]
            # (The group's `sleep` dies of USR1 too, which bash reports on stderr.)
            stdout = b"".join(e.data for e in rest if isinstance(e, execd.Output) and e.stream == "stdout")
            assert stdout == b"got-usr1\n"
            assert isinstance(rest[-1], execd.Closed)

            sleeper = await env.start(["sleep", "30"])
            assert await sleeper.signal("INT") is True
            assert await sleeper.wait(timeout=30) == execd.ExitStatus(-1, "SIGINT")

            stubborn = await env.start(["sleep", "30"])
            assert await stubborn.terminate() is True
            assert await stubborn.wait(timeout=30) == execd.ExitStatus(-1, "SIGTERM")
            with pytest.raises(execd.InvalidInputError, match="BOGUS"):
                await (await env.start(["sleep", "5"])).signal("BOGUS")

    run_async(body())


@pytest.mark.parametrize("binary_output", [True, False])
def test_output_is_byte_exact(server: Server, binary_output: bool) -> None:
    payload = bytes(range(256)) * 2048 + b"\x00\xff\r\n\x1b[0m"

    async def body() -> None:
        async with execd.connect(server.url, token=server.token, binary_output=binary_output) as env:
            assert env.info.capabilities.get("binaryOutput") is binary_output
            path = f"/tmp/execd-py-binary-{binary_output}"
            await env.fs.write_file(path, payload)
            r = await env.run(["cat", path])
            assert r.stdout == payload
            both = await env.run(["bash", "-c", f"cat {path} >&2; printf '\\x00\\x01'"])
            assert (both.stdout, both.stderr) == (b"\x00\x01", payload)
            await env.fs.remove(path)

    run_async(body())


def test_a_thousand_lines_in_order(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            p = await env.start(["seq", "1", "1000"])
            seqs = []
            text = bytearray()
            async for event in p:
                seqs.append(event.seq)
                if isinstance(event, execd.Output):
                    text += event.data
            assert seqs == list(range(1, len(seqs) + 1))
            assert text.decode().splitlines() == [str(n) for n in range(1, 1001)]
            # The retained log has the same bytes.
            read = await p.read(0)
            assert b"".join(c.data for c in read.chunks) == bytes(text)
            assert (read.exited, read.exit_code, read.closed) == (True, 0, True)

    run_async(body())


def test_environment_variables(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            inherited = await env.run(["bash", "-c", 'echo "$FOO:${PATH:+has-path}"'], env={"FOO": "bar"})
            assert inherited.stdout == b"bar:has-path\n"
            alone = await env.run(["/usr/bin/env"], env={"ONLY": "this"}, clear_env=True)
            assert alone.stdout == b"ONLY=this\n"

    run_async(body())


def test_timeout_terminates_and_reports_output(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            with pytest.raises(execd.ProcessTimeoutError) as caught:
                await env.run(["bash", "-c", "echo before; exec sleep 30"], timeout=2)
            assert caught.value.stdout == b"before\n"
            assert isinstance(caught.value, TimeoutError)

    run_async(body(), timeout=20)


def test_server_errors_are_typed(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            with pytest.raises(execd.InvalidInputError, match="no-such-program-xyz") as missing:
                await env.start(["no-such-program-xyz"])
            assert missing.value.code == -32602
            with pytest.raises(execd.InvalidInputError, match="relative"):
                await env.start(["true"], cwd="relative/dir")
            p = await env.start(["sleep", "5"], process_id="twice")
            with pytest.raises(execd.InvalidRequestError, match="twice"):
                await env.connection.call(
                    "process/start",
                    {"processId": "twice", "argv": ["true"], "cwd": "/", "env": {}},
                )
            await p.terminate()
            with pytest.raises(execd.UnsupportedError):
                await env.connection.call("no/such/method", {})
            # The connection goes on after errors.
            assert (await env.run(["true"])).exit_code == 0

    run_async(body())


def test_many_processes_at_once(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            runs = [env.run(["bash", "-c", f"echo {n}; exit {n % 7}"]) for n in range(20)]
            results = await asyncio.gather(*runs)
            for n, r in enumerate(results):
                assert (r.exit_code, r.stdout) == (n % 7, f"{n}\n".encode())

    run_async(body())
