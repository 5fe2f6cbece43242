"""Exec approvals across a lost connection, through the fault-injecting
proxy (tests/proxy.py) to a real server: an answer decided while the
client is reconnecting (or once it is connected again) reaches the server
on the resumed connection (the server's ask waits across the detach, and
its asking again after the resume does not reach the callback a second
time); an ask the server raised while the session was detached is
answered once it is resumed; and an ask the lost connection swallowed is
asked again after the resume. Without that the ask would wait out its
``askTimeoutMs`` and the exec be denied."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

import execd
from conftest import Server, run_async, start_server
from proxy import FaultProxy
from test_resume import FAST, eventually, port_of

ASK_ENV = execd.ExecPolicy(rules=[execd.Rule(["env"], "ask")], ask_timeout_ms=25_000)


@pytest.mark.parametrize("answer_when", ["reconnecting", "connected"])
def test_an_answer_decided_across_the_resume_reaches_the_server(server: Server, answer_when: str) -> None:
    decided: list[execd.ExecDecision] = []
    states: list[str] = []

    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            opened: list[execd.Environment] = []

            async def on_approve(request: execd.ApprovalRequest) -> execd.Answer:
                # The connection is lost while the harness makes up its mind.
                proxy.refusing = True
                proxy.cut()
                env = opened[0]
                await eventually(lambda: env.connection.state == "reconnecting", "the client reconnecting")
                proxy.refusing = False
                if answer_when == "connected":
                    # By then the server has asked again.
                    await eventually(lambda: env.connection.state == "connected", "the client connected again")
                states.append(env.connection.state)
                return "run"

            async with execd.connect(
                proxy.url, token=server.token, reconnect=FAST, on_approve=on_approve, on_decision=decided.append
            ) as env:
                opened.append(env)
                r = await env.run(["bash", "-c", "env true && echo ran-env; echo end"], exec_policy=ASK_ENV, timeout=50)
                assert r.stdout == b"ran-env\nend\n", r
                assert states == [answer_when]  # Asked once.
                assert proxy.cuts == 1
                assert env.connection.resumes == 1
                [env_decision] = [d for d in decided if d.argv[0] == "env"]
                assert (env_decision.decision, env_decision.decided_by) == ("allow", "client")

    run_async(body())


def approving(asked: list[str]) -> Callable[[execd.ApprovalRequest], execd.Answer]:
    """An approval callback answering ``run``, recording each exec's ``argv[0]``."""

    def on_approve(request: execd.ApprovalRequest) -> execd.Answer:
        asked.append(request.argv[0])
        return "run"

    return on_approve


async def output_of(events: AsyncIterator[execd.ProcessEvent]) -> bytes:
    """Every output byte of a process's remaining events."""
    out = bytearray()
    async for event in events:
        if isinstance(event, execd.Output):
            out.extend(event.data)
    return bytes(out)


def children_of(pid: int) -> list[int]:
    """The pids of a process's children (Linux ``/proc``)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def detached(server: Server, session: str) -> bool:
    """Whether the server's log says it detached ``session`` (audit event)."""
    return any("session.detached" in line and session in line for line in server.log_text().splitlines())


def release(fifo: Path) -> bool:
    """Write a line to the fifo the script waits on (false if it has no reader yet)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        os.write(fd, b"go\n")
    finally:
        os.close(fd)
    return True


@pytest.fixture
def audited(execd_bin: Path, tmp_path: Path) -> Iterator[Server]:
    """A server whose log has the audit events (JSON lines)."""
    running = start_server(execd_bin, tmp_path / "audited", ["--log-format", "json"], token=secrets.token_hex(16))
    yield running
    running.kill()


def test_an_ask_raised_while_detached_is_answered_after_the_resume(audited: Server, tmp_path: Path) -> None:
    server = audited
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    # Builtins only until `env`: no other exec to decide while detached.
    script = f"echo $$; read -r line < {fifo}; env true && echo ran-env; echo end"
    asked: list[str] = []
    on_approve = approving(asked)

    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            async with execd.connect(proxy.url, token=server.token, reconnect=FAST, on_approve=on_approve) as env:
                p = await env.start(["bash", "-c", script], exec_policy=ASK_ENV)
                events = p.events()
                first = await events.__anext__()
                assert isinstance(first, execd.Output)
                shell = int(first.data)
                session = env.info.session_id
                proxy.refusing = True
                proxy.cut()
                await eventually(lambda: detached(server, session), "the server detached the session")
                await eventually(lambda: release(fifo), "the script waiting on its fifo")
                # The child that runs `env` waits in its exec for the answer.
                await eventually(lambda: children_of(shell) != [], "the exec of env held for approval")
                assert asked == []  # Nobody to ask while detached.
                proxy.refusing = False
                assert await output_of(events) == b"ran-env\nend\n"
                assert asked == ["env"]
                assert env.connection.resumes == 1

    run_async(body())


def test_an_ask_the_lost_connection_swallowed_is_asked_again(server: Server, tmp_path: Path) -> None:
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    # Builtins only until `env`: its exec is the first to ask.
    script = f"read -r line < {fifo}; env true && echo ran-env; echo end"
    asked: list[str] = []
    on_approve = approving(asked)

    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            async with execd.connect(proxy.url, token=server.token, reconnect=FAST, on_approve=on_approve) as env:
                p = await env.start(["bash", "-c", script], exec_policy=ASK_ENV)
                events = p.events()
                # The next bytes from the server (the ask for `env`) are
                # dropped, and the connection cut there.
                proxy.cut_after(0)
                await eventually(lambda: release(fifo), "the script waiting on its fifo")
                assert await output_of(events) == b"ran-env\nend\n"
                assert asked == ["env"]
                assert proxy.cuts == 1
                assert env.connection.resumes == 1

    run_async(body())
