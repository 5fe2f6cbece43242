"""A tree under a network policy, through a real server: its connections go
through execd's proxy to a real HTTP server on this machine's loopback.
``ask`` rules reach the ``on_network_approve`` callback (plain or async)
and its answer decides, once or for the rest of the tree; every decision
reaches ``on_network_decision``; without a callback an ask is denied. Skipped,
loudly, where the server cannot give a tree a network namespace of its own.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import execd
from conftest import Server, run_async

GREETING = "hello from the host"


class HostServer:
    """A plain HTTP server on 127.0.0.1 that counts the requests it answers."""

    def __init__(self) -> None:
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                owner.requests += 1
                body = GREETING.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def host() -> Iterator[HostServer]:
    running = HostServer()
    yield running
    running.stop()


def curl(url: str, *flags: str) -> str:
    return " ".join(["curl -sS --max-time 20", *flags, url])


def ask(host: str) -> execd.NetworkRule:
    return execd.NetworkRule(host, "ask")


async def needs_network_namespace(env: execd.Environment) -> None:
    sandbox = env.info.capabilities.get("sandbox")
    if not (isinstance(sandbox, dict) and sandbox.get("networkNamespace") is True):
        message = "SKIPPED: this server cannot give a tree a network namespace of its own"
        print(f"\n\n!!! {message} (capabilities.sandbox = {sandbox!r})\n", file=sys.stderr)
        pytest.skip(message)


def test_ask_allow_and_deny_through_the_callback(server: Server, host: HostServer) -> None:
    asked: list[execd.NetworkRequest] = []
    decided: list[execd.NetworkDecision] = []

    async def on_network_approve(request: execd.NetworkRequest) -> execd.NetworkReply:
        await asyncio.sleep(0)
        asked.append(request)
        # 127.0.0.1 allowed once each time; localhost denied for the rest of the tree.
        if request.host == "127.0.0.1":
            return execd.NetworkReply("allow")
        return execd.NetworkReply("deny", for_process=True)

    a = curl(f"http://127.0.0.1:{host.port}/")
    b = curl(f"http://localhost:{host.port}/", "-i")
    script = f"{a}; echo; {a}; echo; {b}; {b}"

    async def body() -> None:
        async with execd.connect(
            server.url,
            token=server.token,
            on_network_approve=on_network_approve,
            on_network_decision=decided.append,
        ) as env:
            await needs_network_namespace(env)
            policy = execd.NetworkPolicy([ask("127.0.0.1"), ask("localhost")])
            r = await env.run(
                ["bash", "-c", script], sandbox=execd.Sandbox(read_only=False), network_policy=policy, timeout=60
            )
            out = r.stdout.decode()
            assert out.count(GREETING) == 2, (out, r.stderr)
            assert out.count("HTTP/1.1 403 Forbidden") == 2, out
            assert "denied by the network policy" in out
            assert host.requests == 2
            assert [q.host for q in asked] == ["127.0.0.1", "127.0.0.1", "localhost"]
            assert (asked[0].port, asked[0].argv[:1]) == (host.port, ["curl"])
            assert asked[0].pid is not None
            assert [(d.host, d.decision, d.decided_by) for d in decided] == [
                ("127.0.0.1", "allow", "client"),
                ("127.0.0.1", "allow", "client"),
                ("localhost", "deny", "client"),
                ("localhost", "deny", "remembered"),
            ]

    run_async(body())


def test_rules_decide_without_asking_and_no_callback_denies(server: Server, host: HostServer) -> None:
    decided: list[execd.NetworkDecision] = []

    async def body() -> None:
        async with execd.connect(server.url, token=server.token, on_network_decision=decided.append) as env:
            await needs_network_namespace(env)
            policy = execd.NetworkPolicy(
                [execd.NetworkRule("127.0.0.1", "allow", port=host.port), ask("localhost")], ask_timeout_ms=20_000
            )
            script = f"{curl(f'http://127.0.0.1:{host.port}/')}; echo; {curl(f'http://localhost:{host.port}/', '-i')}"
            # No sandbox given: the library supplies one (a network policy needs it).
            r = await env.run(["bash", "-c", script], network_policy=policy, timeout=60)
            out = r.stdout.decode()
            assert out.count(GREETING) == 1 and "HTTP/1.1 403 Forbidden" in out, (out, r.stderr)
            assert host.requests == 1
            first, second = decided
            assert (first.decision, first.decided_by, first.rule) == ("allow", "rule", policy.rules[0])
            assert (second.host, second.decision) == ("localhost", "deny")

            # A policy with a sandbox that has the network anyway is refused, naming it.
            with pytest.raises(execd.InvalidInputError, match="network"):
                await env.start(["true"], sandbox=execd.Sandbox(network=True), network_policy=policy)
            assert (await env.run(["true"])).exit_code == 0

    run_async(body())
