"""The environment behind an execd server, as a harness uses it: run a
command to its end (:meth:`Environment.run`, like :func:`subprocess.run`),
start one and follow it (:meth:`Environment.start`), and the server's files
(:attr:`Environment.fs`). :func:`connect` opens one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Generator, Mapping, Sequence
from types import TracebackType
from typing import Any

from .connection import (
    ApprovalCallback,
    Connection,
    DecisionCallback,
    FrameCallback,
    default_url,
)
from .errors import ExecdError, ProcessTimeoutError, ProtocolError
from .fs import FileSystem
from .network import NetworkApprovalCallback, NetworkDecisionCallback, NetworkPolicy, Sandbox
from .process import Process
from .options import DEFAULT_OUTPUT_WINDOW, Keepalive, ReconnectPolicy
from .types import CompletedProcess, ExecPolicy, Exited, Output, ProcessInfo, ServerInfo

__all__ = ["Environment", "connect"]


class Environment:
    """A connected execd server: processes and files. Use :func:`connect`.

    Closing it (or leaving ``async with``) ends the session: the server
    terminates every process it started for it.
    """

    def __init__(self, connection: Connection, output_window: int | None = DEFAULT_OUTPUT_WINDOW) -> None:
        self.connection = connection
        """The underlying connection (requests, callbacks, state)."""
        self.output_window = output_window
        """The ``outputWindow`` processes start with unless told otherwise (``None``: none)."""
        self.fs = FileSystem(connection)
        """The server's filesystem."""

    @property
    def info(self) -> ServerInfo:
        """What the server said about itself at ``initialize``."""
        return self.connection.info

    async def start(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        clear_env: bool = False,
        tty: bool = False,
        stdin: bool = True,
        size: tuple[int, int] | None = None,
        arg0: str | None = None,
        exec_policy: ExecPolicy | None = None,
        process_id: str | None = None,
        output_window: int | None = None,
        sandbox: Sandbox | None = None,
        network_policy: NetworkPolicy | None = None,
    ) -> Process:
        """Start a process and return it at once; its events are followed from the start.

        ``cwd`` defaults to the server's working directory (else ``/``). The
        environment is the server's own (less names matching ``*KEY*``,
        ``*SECRET*``, ``*TOKEN*``) with ``env`` laid on top; with
        ``clear_env`` it is ``env`` alone. ``tty`` runs it under a terminal
        of ``size`` (rows, cols; default 24 x 80) with one merged ``pty``
        stream. ``stdin`` keeps a pipe process's stdin open for
        :meth:`Process.write`. ``exec_policy`` holds every exec of the tree
        for a decision (``ask`` goes to the approval callback of
        :func:`connect`). ``process_id`` defaults to a fresh unique id.
        ``output_window`` (bytes; default the environment's, 8 MiB; 0 for
        none) bounds the output the server sends that the process's events
        have not taken (flow control: a process whose events are not read
        blocks in its writes once that much is unread; nothing is lost).
        ``sandbox`` confines the tree (execd's sandbox). ``network_policy``
        (needs ``sandbox``; a :class:`Sandbox` is used if none is given)
        lets the tree reach the network only through execd's proxy, which
        decides each connection by host and port (``ask`` goes to the
        ``on_network_approve`` callback of :func:`connect`).
        """
        argv = list(argv)
        process_id = process_id or f"py-{uuid.uuid4().hex[:16]}"
        params: dict[str, Any] = {
            "processId": process_id,
            "argv": argv,
            "cwd": cwd or self.info.cwd or "/",
            "env": dict(env or {}),
            "tty": tty,
            "pipeStdin": stdin and not tty,
            "arg0": arg0,
        }
        if not clear_env:
            params["envPolicy"] = {"inherit": "all"}
        if size is not None:
            params["size"] = {"rows": size[0], "cols": size[1]}
        if exec_policy is not None:
            params["execPolicy"] = exec_policy.to_wire()
        if network_policy is not None:
            sandbox = sandbox or Sandbox()
            params["networkPolicy"] = network_policy.to_wire()
        if sandbox is not None:
            params["sandbox"] = sandbox.to_wire()
        window = self.output_window if output_window is None else output_window
        if window:
            params["outputWindow"] = window
        channel = self.connection.register(process_id)
        if window:
            channel.acking(window, self.connection.ack)
        try:
            # A start whose exec waits for approval answers once decided.
            timeout = self.connection.request_timeout
            if exec_policy is not None and exec_policy.ask_timeout_ms is not None:
                timeout += exec_policy.ask_timeout_ms / 1000
            result = await self.connection.call("process/start", params, timeout=timeout)
        except BaseException:
            self.connection.unregister(process_id)
            raise
        sandbox_type = result.get("sandboxType") if isinstance(result, dict) else None
        return Process(
            self.connection,
            channel,
            argv,
            sandbox_type if sandbox_type in ("none", "linuxSeccomp") else None,
        )

    async def list_processes(self) -> list[ProcessInfo]:
        """The session's processes (closed ones too), in start order (``process/list``)."""
        result = await self.connection.call("process/list", {})
        listed = result.get("processes") if isinstance(result, dict) else None
        if not isinstance(listed, list):
            raise ProtocolError(f"bad process/list result: {result!r}")
        processes = []
        for entry in listed:
            try:
                processes.append(
                    ProcessInfo(
                        process_id=str(entry["processId"]),
                        state=entry["state"],
                        next_seq=int(entry["nextSeq"]),
                        tty=bool(entry["tty"]),
                        exit_code=entry.get("exitCode"),
                        signal=entry.get("signal"),
                        output_window=entry.get("outputWindow"),
                        acked_seq=entry.get("ackedSeq"),
                    )
                )
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise ProtocolError(f"bad process/list entry {entry!r}: {err!r}") from None
            if processes[-1].state not in ("starting", "running", "exited", "closed"):
                raise ProtocolError(f"process/list names unknown state {entry['state']!r}")
        return processes

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        clear_env: bool = False,
        input: bytes | None = None,
        timeout: float | None = None,
        tty: bool = False,
        exec_policy: ExecPolicy | None = None,
        sandbox: Sandbox | None = None,
        network_policy: NetworkPolicy | None = None,
    ) -> CompletedProcess:
        """Run a command to its end and return its exit code and output.

        ``input`` is written to stdin, then EOF (without it stdin is closed).
        After ``timeout`` seconds the process is terminated and
        :class:`~execd.ProcessTimeoutError` raised with the output so far.
        A PTY process's output is all in ``stdout``. Other arguments as
        :meth:`start`.
        """
        process = await self.start(
            argv,
            cwd=cwd,
            env=env,
            clear_env=clear_env,
            tty=tty,
            stdin=input is not None,
            exec_policy=exec_policy,
            sandbox=sandbox,
            network_policy=network_policy,
        )
        stdout = bytearray()
        stderr = bytearray()
        exited: list[Exited] = []

        async def collect() -> None:
            async for event in process:
                if isinstance(event, Output):
                    (stderr if event.stream == "stderr" else stdout).extend(event.data)
                elif isinstance(event, Exited):
                    exited.append(event)

        async def feed_and_collect() -> None:
            collector = asyncio.ensure_future(collect())
            try:
                if input is not None:
                    try:
                        await process.write_all(input, close_stdin=True)
                    except ExecdError:
                        # Its stdin would never close: end it rather than wait forever.
                        with contextlib.suppress(ExecdError):
                            await process.terminate()
                        raise
                await collector
            finally:
                collector.cancel()

        try:
            await asyncio.wait_for(feed_and_collect(), timeout)
        except asyncio.TimeoutError:
            await process.terminate()
            raise ProcessTimeoutError(list(argv), timeout or 0, bytes(stdout), bytes(stderr)) from None
        status = exited[0] if exited else None
        return CompletedProcess(
            argv=list(argv),
            exit_code=status.exit_code if status else -1,
            stdout=bytes(stdout),
            stderr=bytes(stderr),
            signal=status.signal if status else None,
        )

    async def close(self) -> None:
        """Close the connection; the server ends this session's processes."""
        await self.connection.close()

    async def __aenter__(self) -> Environment:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class _Connecting:
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(self, open_: Any) -> None:
        self._open = open_
        self._environment: Environment | None = None

    def __await__(self) -> Generator[Any, None, Environment]:
        return self._open().__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> Environment:
        self._environment = await self._open()
        return self._environment

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._environment is not None:
            await self._environment.close()


def connect(
    url: str | None = None,
    *,
    token: str | None = None,
    on_approve: ApprovalCallback | None = None,
    on_decision: DecisionCallback | None = None,
    binary_output: bool = True,
    timeout: float = 60.0,
    client_name: str = "execd-python",
    on_frame: FrameCallback | None = None,
    reconnect: ReconnectPolicy | None = ReconnectPolicy(),
    keepalive: Keepalive | None = Keepalive(),
    output_window: int | None = DEFAULT_OUTPUT_WINDOW,
    ca_file: str | os.PathLike[str] | None = None,
    on_network_approve: NetworkApprovalCallback | None = None,
    on_network_decision: NetworkDecisionCallback | None = None,
) -> _Connecting:
    """Connect to an execd server: ``async with execd.connect(url) as env``
    (or ``env = await execd.connect(url)``, then ``await env.close()``).

    ``url`` defaults to ``EXECD_URL``, else ``ws://127.0.0.1:7878``. The
    token sent is ``token``, else ``EXECD_TOKEN``, else the default token
    file (``$XDG_STATE_HOME/execd/token`` or ``~/.local/state/execd/token``,
    only to a loopback server). ``on_approve`` decides the server's
    ``exec/approve`` requests (``"run"``, ``"escalate"`` or ``"deny"``; may be
    async); without it every ``ask`` is denied. ``on_decision`` receives
    every ``exec/decision``. ``binary_output`` asks for output as binary
    frames (less to decode). ``timeout`` bounds connecting and each request,
    in seconds. ``on_frame`` sees every frame sent and received (tracing).

    ``reconnect`` resumes the session after a connection lost without a
    close (``None``: a loss ends it; see :class:`~execd.ReconnectPolicy`);
    ``keepalive`` pings the server and counts it lost after a silence
    (``None``: off). ``output_window`` is the ``outputWindow`` processes
    start with (``None``: no flow control). ``ca_file`` checks a ``wss://``
    server's certificate against a private CA (PEM).

    ``on_network_approve`` decides ``network/approve`` requests (a network
    policy's ``ask``: ``"allow"``, ``"deny"`` or a
    :class:`~execd.NetworkReply`; may be async); without it they are
    denied. ``on_network_decision`` receives every ``network/decision``.
    """

    async def open_() -> Environment:
        connection = await Connection.open(
            url or default_url(),
            token=token,
            binary_output=binary_output,
            request_timeout=timeout,
            open_timeout=timeout,
            on_approve=on_approve,
            on_decision=on_decision,
            on_frame=on_frame,
            client_name=client_name,
            reconnect=reconnect,
            keepalive=keepalive,
            ca_file=os.fspath(ca_file) if ca_file is not None else None,
            on_network_approve=on_network_approve,
            on_network_decision=on_network_decision,
        )
        return Environment(connection, output_window)

    return _Connecting(open_)
