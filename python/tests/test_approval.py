"""Exec approval through the callback: every ``ask`` becomes an
``exec/approve`` request the callback answers (plain or async), every
decision an ``exec/decision``; without a callback an ask is denied."""

from __future__ import annotations

import asyncio

import execd
from conftest import Server, run_async

SCRIPT = "env true && echo ran-env; ls / >/dev/null && echo ran-ls; echo end"
POLICY = execd.ExecPolicy(
    rules=[execd.Rule(["env"], "ask"), execd.Rule(["ls"], "ask")], ask_timeout_ms=20_000
)


def answer_by_program(request: execd.ApprovalRequest) -> execd.Answer:
    return "run" if request.argv[0] == "env" else "deny"


def test_approve_and_deny_through_the_callback(server: Server) -> None:
    asked: list[execd.ApprovalRequest] = []
    decided: list[execd.ExecDecision] = []

    def on_approve(request: execd.ApprovalRequest) -> execd.Answer:
        asked.append(request)
        return answer_by_program(request)

    async def body() -> None:
        async with execd.connect(
            server.url, token=server.token, on_approve=on_approve, on_decision=decided.append
        ) as env:
            assert env.info.capabilities.get("execPolicy") is True, env.info.capabilities
            r = await env.run(["bash", "-c", SCRIPT], exec_policy=POLICY, timeout=60)
            assert r.stdout == b"ran-env\nend\n", r
            assert b"ermission denied" in r.stderr
            assert [a.argv[0] for a in asked] == ["env", "ls"]
            assert all(a.path.startswith("/") and a.process_id for a in asked)
            by_program = {d.argv[0]: d for d in decided}
            assert (by_program["env"].decision, by_program["env"].decided_by) == ("allow", "client")
            assert (by_program["ls"].decision, by_program["ls"].decided_by) == ("deny", "client")
            assert by_program["bash"].decided_by == "default"

    run_async(body())


def test_async_callback(server: Server) -> None:
    async def on_approve(request: execd.ApprovalRequest) -> execd.Answer:
        await asyncio.sleep(0)
        return answer_by_program(request)

    async def body() -> None:
        async with execd.connect(server.url, token=server.token, on_approve=on_approve) as env:
            r = await env.run(["bash", "-c", SCRIPT], exec_policy=POLICY, timeout=60)
            assert r.stdout == b"ran-env\nend\n", r

    run_async(body())


def test_without_a_callback_asks_are_denied(server: Server) -> None:
    decided: list[execd.ExecDecision] = []

    async def body() -> None:
        async with execd.connect(server.url, token=server.token, on_decision=decided.append) as env:
            r = await env.run(["bash", "-c", SCRIPT], exec_policy=POLICY, timeout=60)
            assert r.stdout == b"end\n", r
            assert {d.argv[0]: d.decision for d in decided if d.argv[0] in ("env", "ls")} == {
                "env": "deny",
                "ls": "deny",
            }

    run_async(body())


def test_a_callback_that_raises_denies(server: Server) -> None:
    def on_approve(request: execd.ApprovalRequest) -> execd.Answer:
        raise RuntimeError("harness bug")

    async def body() -> None:
        async with execd.connect(server.url, token=server.token, on_approve=on_approve) as env:
            r = await env.run(["bash", "-c", SCRIPT], exec_policy=POLICY, timeout=60)
            assert r.stdout == b"end\n", r
            # The connection is fine afterwards.
            assert (await env.run(["true"])).exit_code == 0

    run_async(body())
