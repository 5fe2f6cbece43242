"""A blocking wrapper for scripts: the same calls without ``await``.

``execd.sync.connect(url)`` runs an event loop in a background thread and
forwards each call to the asynchronous :class:`~execd.Environment`::

    with execd.sync.connect() as env:
        print(env.run(["uname", "-a"]).stdout.decode())

Callbacks (``on_approve``, ``on_decision``, ``on_network_approve``,
``on_network_decision``) run on that background thread. Watches
(``fs.watch``) are asynchronous only.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from .connection import ApprovalCallback, DecisionCallback
from .network import NetworkApprovalCallback, NetworkDecisionCallback, NetworkPolicy, Sandbox
from .environment import Environment
from .environment import connect as connect_async
from .walk import WalkEntry
from .options import DEFAULT_OUTPUT_WINDOW, Keepalive, ReconnectPolicy
from .process import Process, ReadResult
from .types import (
    CompletedProcess,
    DirectoryEntry,
    ExecPolicy,
    ExitStatus,
    Metadata,
    ProcessEvent,
    ProcessInfo,
    ServerInfo,
    WriteStatus,
)

__all__ = ["connect", "SyncEnvironment", "SyncProcess", "SyncFileSystem"]

T = TypeVar("T")


class _Loop:
    """An event loop on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="execd-sync", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _awaited(value: Awaitable[T]) -> T:
    return await value


class SyncProcess:
    """A started process, blocking (see :class:`execd.Process`)."""

    def __init__(self, loop: _Loop, process: Process) -> None:
        self._loop = loop
        self.process = process
        """The asynchronous process underneath."""

    @property
    def id(self) -> str:
        """The process id."""
        return self.process.id

    @property
    def exit_status(self) -> ExitStatus | None:
        """How the process ended, once it did."""
        return self.process.exit_status

    def __iter__(self) -> Iterator[ProcessEvent]:
        events = self.process.events()
        while True:
            try:
                yield self._loop.run(_awaited(events.__anext__()))
            except StopAsyncIteration:
                return

    def write(
        self, data: bytes, *, close_stdin: bool = False, write_id: str | None = None
    ) -> WriteStatus:
        """Write to stdin (see :meth:`execd.Process.write`)."""
        return self._loop.run(self.process.write(data, close_stdin=close_stdin, write_id=write_id))

    def write_all(self, data: bytes, *, close_stdin: bool = False) -> WriteStatus:
        """Write everything (see :meth:`execd.Process.write_all`)."""
        return self._loop.run(self.process.write_all(data, close_stdin=close_stdin))

    def close_stdin(self) -> WriteStatus:
        """Send EOF to stdin."""
        return self._loop.run(self.process.close_stdin())

    def resize(self, rows: int, cols: int) -> None:
        """Set a PTY process's terminal size."""
        self._loop.run(self.process.resize(rows, cols))

    def signal(self, signal: str) -> bool:
        """Send a signal by name; true if it was running."""
        return self._loop.run(self.process.signal(signal))

    def terminate(self) -> bool:
        """SIGTERM, then SIGKILL after the grace; true if it was running."""
        return self._loop.run(self.process.terminate())

    def wait(self, timeout: float | None = None) -> ExitStatus:
        """Wait until it exited."""
        return self._loop.run(self.process.wait(timeout))

    def read(
        self, after_seq: int = 0, *, max_bytes: int | None = None, wait_ms: int | None = None
    ) -> ReadResult:
        """Retained output after ``after_seq``."""
        return self._loop.run(self.process.read(after_seq, max_bytes=max_bytes, wait_ms=wait_ms))


class SyncFileSystem:
    """The server's files, blocking (see :class:`execd.FileSystem`)."""

    def __init__(self, loop: _Loop, environment: Environment) -> None:
        self._loop = loop
        self._fs = environment.fs

    def read_file(self, path: str) -> bytes:
        """The whole file."""
        return self._loop.run(self._fs.read_file(path))

    def read_range(self, path: str, offset: int, length: int) -> tuple[bytes, bool]:
        """A range of the file, and whether it reached the end."""
        return self._loop.run(self._fs.read_range(path, offset, length))

    def write_file(self, path: str, data: bytes, *, append: bool = False) -> None:
        """Replace (or append to) the file."""
        self._loop.run(self._fs.write_file(path, data, append=append))

    def append_file(self, path: str, data: bytes) -> None:
        """Append to the file."""
        self._loop.run(self._fs.append_file(path, data))

    def create_directory(self, path: str, *, recursive: bool = False) -> None:
        """Create a directory."""
        self._loop.run(self._fs.create_directory(path, recursive=recursive))

    def metadata(self, path: str) -> Metadata:
        """What the path is."""
        return self._loop.run(self._fs.metadata(path))

    def read_directory(self, path: str) -> list[DirectoryEntry]:
        """A directory's entries."""
        return self._loop.run(self._fs.read_directory(path))

    def remove(self, path: str, *, recursive: bool = False, force: bool = False) -> None:
        """Remove a file or tree."""
        self._loop.run(self._fs.remove(path, recursive=recursive, force=force))

    def copy(self, source: str, destination: str, *, recursive: bool = False) -> None:
        """Copy on the server."""
        self._loop.run(self._fs.copy(source, destination, recursive=recursive))

    def exists(self, path: str) -> bool:
        """Whether the path exists."""
        return self._loop.run(self._fs.exists(path))

    def rename(self, source: str, destination: str) -> None:
        """Rename atomically on the server."""
        self._loop.run(self._fs.rename(source, destination))

    def walk(self, path: str, **options: Any) -> list[WalkEntry]:
        """Every entry below ``path``, all pages (options as :meth:`execd.FileSystem.walk`)."""
        return self._loop.run(self._fs.walk(path, **options).collect())


class SyncEnvironment:
    """A connected server, blocking (see :class:`execd.Environment`). Close it
    (or leave ``with``) to end the session."""

    def __init__(self, loop: _Loop, environment: Environment) -> None:
        self._loop = loop
        self.environment = environment
        """The asynchronous environment underneath."""
        self.fs = SyncFileSystem(loop, environment)
        """The server's filesystem."""

    @property
    def info(self) -> ServerInfo:
        """What the server said about itself."""
        return self.environment.info

    def run(
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
        """Run a command to its end (see :meth:`execd.Environment.run`)."""
        return self._loop.run(
            self.environment.run(
                argv,
                cwd=cwd,
                env=env,
                clear_env=clear_env,
                input=input,
                timeout=timeout,
                tty=tty,
                exec_policy=exec_policy,
                sandbox=sandbox,
                network_policy=network_policy,
            )
        )

    def start(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        clear_env: bool = False,
        tty: bool = False,
        stdin: bool = True,
        size: tuple[int, int] | None = None,
        exec_policy: ExecPolicy | None = None,
        sandbox: Sandbox | None = None,
        network_policy: NetworkPolicy | None = None,
    ) -> SyncProcess:
        """Start a process (see :meth:`execd.Environment.start`)."""
        process = self._loop.run(
            self.environment.start(
                argv,
                cwd=cwd,
                env=env,
                clear_env=clear_env,
                tty=tty,
                stdin=stdin,
                size=size,
                exec_policy=exec_policy,
                sandbox=sandbox,
                network_policy=network_policy,
            )
        )
        return SyncProcess(self._loop, process)

    def list_processes(self) -> list[ProcessInfo]:
        """The session's processes (see :meth:`execd.Environment.list_processes`)."""
        return self._loop.run(self.environment.list_processes())

    def close(self) -> None:
        """Close the connection and stop the background loop."""
        try:
            self._loop.run(self.environment.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> SyncEnvironment:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def connect(
    url: str | None = None,
    *,
    token: str | None = None,
    on_approve: ApprovalCallback | None = None,
    on_decision: DecisionCallback | None = None,
    binary_output: bool = True,
    timeout: float = 60.0,
    reconnect: ReconnectPolicy | None = ReconnectPolicy(),
    keepalive: Keepalive | None = Keepalive(),
    output_window: int | None = DEFAULT_OUTPUT_WINDOW,
    on_network_approve: NetworkApprovalCallback | None = None,
    on_network_decision: NetworkDecisionCallback | None = None,
) -> SyncEnvironment:
    """Connect and return a blocking environment (arguments as :func:`execd.connect`)."""
    loop = _Loop()
    try:
        environment = loop.run(
            _awaited(
                connect_async(
                    url,
                    token=token,
                    on_approve=on_approve,
                    on_decision=on_decision,
                    binary_output=binary_output,
                    timeout=timeout,
                    reconnect=reconnect,
                    keepalive=keepalive,
                    output_window=output_window,
                    on_network_approve=on_network_approve,
                    on_network_decision=on_network_decision,
                )
            )
        )
    except BaseException:
        loop.stop()
        raise
    return SyncEnvironment(loop, environment)
