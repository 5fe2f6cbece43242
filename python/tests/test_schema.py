"""Every frame of a real session, both directions, errors included, is valid
under the committed JSON Schema (schema/execd-protocol.json): the envelope
under the root, params under the method's or notification's entry, results
under the method's ``result`` (matched by id to the request), errors under
``error``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import execd
from conftest import REPO, Server, run_async

SCHEMA = json.loads((REPO / "schema" / "execd-protocol.json").read_text())
REGISTRY = Registry().with_resource(SCHEMA["$id"], Resource.from_contents(SCHEMA))
UNKNOWN_METHOD = "no/such/method"


def validator(pointer: list[str]) -> Draft202012Validator:
    """A validator for the part of the document at ``pointer`` (``/methods/...``)."""
    escaped = "/".join(part.replace("~", "~0").replace("/", "~1") for part in pointer)
    fragment = f"/{escaped}" if pointer else ""
    return Draft202012Validator({"$ref": f"{SCHEMA['$id']}#{fragment}"}, registry=REGISTRY)


def record_session(server: Server) -> list[tuple[str, Any]]:
    """Drive a session through most of the protocol; return its frames."""
    frames: list[tuple[str, Any]] = []
    root = f"/tmp/execd-py-schema-{uuid.uuid4().hex}"

    def on_frame(direction: str, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            assert frame[:1] == b"\x02", "binary output is off in this session; only transfer pieces are binary"
            return
        frames.append((direction, json.loads(frame)))

    def on_approve(request: execd.ApprovalRequest) -> execd.Answer:
        if request.argv[0] == "ls":
            raise RuntimeError("answered with an error reply")
        return "run"

    policy = execd.ExecPolicy([execd.Rule(["env"], "ask"), execd.Rule(["ls"], "ask")])
    network_asked: list[execd.NetworkRequest] = []

    def on_network_approve(request: execd.NetworkRequest) -> execd.NetworkAnswer:
        network_asked.append(request)
        return "allow"

    async def body() -> None:
        async with execd.connect(
            server.url,
            token=server.token,
            binary_output=False,
            on_frame=on_frame,
            on_approve=on_approve,
            on_decision=lambda decision: None,
            on_network_approve=on_network_approve,
            on_network_decision=lambda decision: None,
        ) as env:
            await env.run(["bash", "-c", "echo out; echo err >&2; cat"], input=b"in\n")
            await env.run(["bash", "-c", "env true; ls / >/dev/null; kill -TERM $$"], exec_policy=policy)
            p = await env.start(["bash", "-c", "read x; stty size"], tty=True, size=(10, 20))
            await p.resize(30, 90)
            await p.write(b"go\n")
            await p.wait(timeout=30)
            await p.read(0, max_bytes=1 << 20)
            windowed = await env.start(["head", "-c", "64", "/dev/zero"], output_window=16)
            async for _ in windowed:  # acked as taken: process/ack
                pass
            await env.list_processes()
            sleeper = await env.start(["sleep", "30"])
            await sleeper.signal("USR1")
            await sleeper.terminate()
            with pytest.raises(execd.InvalidInputError):
                await env.start([])
            with pytest.raises(execd.InvalidInputError):
                await sleeper.signal("NOPE")
            await env.fs.create_directory(f"{root}/d", recursive=True)
            await env.fs.write_file(f"{root}/d/f", b"\x00\x01data")
            await env.fs.append_file(f"{root}/d/f", b"more")
            await env.fs.read_file(f"{root}/d/f")
            await env.fs.read_range(f"{root}/d/f", 1, 3)
            await env.fs.metadata(f"{root}/d/f")
            await env.fs.read_directory(f"{root}/d")
            await env.fs.copy(f"{root}/d", f"{root}/e", recursive=True)
            async with env.fs.watch(root, recursive=True) as watch:
                await env.fs.rename(f"{root}/e", f"{root}/renamed")
                await watch.next_batch(10)
            await env.fs.walk(root, metadata=True, include_symlinks=True, page_size=2).collect()
            await env.fs.upload(f"{root}/streamed", b"s" * 100)
            assert b"".join([piece async for piece in env.fs.download(f"{root}/streamed")]) == b"s" * 100
            sandbox = env.info.capabilities.get("sandbox")
            if isinstance(sandbox, dict) and sandbox.get("networkNamespace") is True:
                # Allowed, then refused by the closed port: 502 (the frames are what count).
                network = execd.NetworkPolicy([execd.NetworkRule("127.0.0.1", "ask", port=9)])
                await env.run(["curl", "-s", "http://127.0.0.1:9/"], network_policy=network, timeout=60)
                assert network_asked, "the network ask never came"
            await env.fs.remove(root, recursive=True)
            with pytest.raises(execd.NotFoundError):
                await env.fs.read_file(f"{root}/gone")
            with pytest.raises(execd.UnsupportedError):
                await env.connection.call(UNKNOWN_METHOD, {})
            await env.connection.call("environment/info", {})
            await env.connection.call("environment/status", {})

    run_async(body())
    return frames


def network_namespace(server: Server) -> bool:
    """Whether the server can run a tree under a network policy."""

    async def ask() -> bool:
        async with execd.connect(server.url, token=server.token) as env:
            sandbox = env.info.capabilities.get("sandbox")
            return isinstance(sandbox, dict) and sandbox.get("networkNamespace") is True

    return run_async(ask())


def test_every_frame_of_a_real_session_is_valid(server: Server) -> None:
    frames = record_session(server)
    envelope = validator([])
    error_schema = validator(["error"])
    asked: dict[tuple[str, Any], str] = {}  # (requester, id) -> method
    seen: set[str] = set()
    problems: list[str] = []

    def check(v: Draft202012Validator, value: Any, what: str) -> None:
        for problem in v.iter_errors(value):
            problems.append(f"{what}: {problem.message} at {list(problem.absolute_path)}")

    for direction, frame in frames:
        check(envelope, frame, f"{direction} envelope {frame}")
        method = frame.get("method")
        if isinstance(method, str):
            seen.add(method)
            if method == UNKNOWN_METHOD:
                asked[(direction, frame["id"])] = method
                continue
            if "id" in frame:
                asked[(direction, frame["id"])] = method
                table = "methods"
            else:
                table = "notifications"
            if method not in SCHEMA[table]:
                problems.append(f"{direction} {method} is not in the schema's {table}")
                continue
            check(validator([table, method, "params"]), frame.get("params", {}), f"{method} params")
            continue
        requester = "received" if direction == "sent" else "sent"
        request_method = asked.get((requester, frame.get("id")))
        if request_method is None:
            problems.append(f"{direction} response to an unknown request: {frame}")
        elif "error" in frame:
            seen.add(f"{request_method} error")
            check(error_schema, frame["error"], f"{request_method} error")
        elif request_method != UNKNOWN_METHOD:
            check(validator(["methods", request_method, "result"]), frame["result"], f"{request_method} result")

    assert not problems, "\n".join(problems)
    expected = {
        "initialize", "initialized", "process/start", "process/write", "process/read",
        "process/resize", "process/signal", "process/terminate", "process/output",
        "process/exited", "process/closed", "exec/approve", "exec/decision",
        "fs/readFile", "fs/writeFile", "fs/createDirectory", "fs/getMetadata",
        "fs/readDirectory", "fs/copy", "fs/remove", "environment/info", "environment/status",
        "process/ack", "process/list",
        "process/start error", "fs/readFile error", "exec/approve error", f"{UNKNOWN_METHOD} error",
        "fs/rename", "fs/walk", "fs/watch", "fs/changed", "fs/unwatch",
        "fs/upload", "fs/uploadFinish", "fs/download", "fs/transferAck", "fs/transferEnd",
    }  # fmt: skip
    if network_namespace(server):
        expected |= {"network/approve", "network/decision"}
    assert expected <= seen, expected - seen


def test_the_schema_rejects_what_the_protocol_forbids() -> None:
    """The schema is not vacuous: wrong shapes fail."""
    start = validator(["methods", "process/start", "params"])
    assert start.is_valid({"processId": "p", "argv": ["true"], "cwd": "/", "env": {}})
    assert not start.is_valid({"processId": "p", "argv": "true", "cwd": "/", "env": {}})
    assert not start.is_valid({"argv": ["true"], "cwd": "/", "env": {}})
    exited = validator(["notifications", "process/exited", "params"])
    assert not exited.is_valid({"processId": "p", "seq": -1, "exitCode": 0})
    output = validator(["notifications", "process/output", "params"])
    assert not output.is_valid({"processId": "p", "seq": 1, "stream": "stdin", "chunk": ""})
    assert not validator(["error"]).is_valid({"code": "x", "message": "m"})
    assert not validator([]).is_valid({"id": 1})
    # The runtime-only fields are typed too.
    read = {"chunks": [], "nextSeq": 1, "exited": False, "exitCode": None, "closed": False, "failure": None}
    read_result = validator(["methods", "process/read", "result"])
    assert read_result.is_valid({**read, "sandboxDenied": False})
    assert not read_result.is_valid({**read, "sandboxDenied": "no"})
    start_result = validator(["methods", "process/start", "result"])
    assert start_result.is_valid({"processId": "p", "sandboxType": "linuxSeccomp"})
    assert not start_result.is_valid({"processId": "p", "sandboxType": "firejail"})
