"""The values the client hands out and takes: process events, results,
file metadata, exec-policy rules and approval requests. Plain frozen
dataclasses and ``Literal`` names, decoded from the wire's camelCase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = [
    "Stream",
    "WriteStatus",
    "Verdict",
    "Answer",
    "Output",
    "Exited",
    "Closed",
    "ProcessEvent",
    "ExitStatus",
    "CompletedProcess",
    "Metadata",
    "DirectoryEntry",
    "Rule",
    "ExecPolicy",
    "ApprovalRequest",
    "ExecDecision",
    "ServerInfo",
    "ProcessState",
    "ProcessInfo",
    "SandboxType",
]

Stream = Literal["stdout", "stderr", "pty"]
"""Where an output chunk came from; a PTY process has one merged ``pty`` stream."""

WriteStatus = Literal["accepted", "unknownProcess", "stdinClosed", "starting"]
"""The result of a write to a process's stdin (a status, not an error)."""

Verdict = Literal["allow", "deny", "escalate", "ask"]
"""What an exec-policy rule decides for an exec."""

ProcessState = Literal["starting", "running", "exited", "closed"]
"""A process's state in ``process/list``."""

SandboxType = Literal["none", "linuxSeccomp"]
"""The sandbox a process started in the codex dialect runs in (``sandboxType``)."""

Answer = Literal["run", "escalate", "deny"]
"""The approval callback's answer to an ``exec/approve`` request."""


@dataclass(frozen=True)
class Output:
    """A chunk of a process's output, exactly the bytes it wrote."""

    seq: int
    """The event's number (per process, from 1, shared with exited and closed)."""
    stream: Stream
    """Which stream it came from."""
    data: bytes
    """The raw bytes."""


@dataclass(frozen=True)
class Exited:
    """The process exited (sent after everything it wrote before exiting)."""

    seq: int
    """The event's number."""
    exit_code: int
    """The exit code, -1 when a signal ended the process."""
    signal: str | None = None
    """The signal's name (``"SIGKILL"``) when a signal ended the process."""


@dataclass(frozen=True)
class Closed:
    """The last event of a process: its output is drained and its resources released."""

    seq: int
    """The event's number."""


ProcessEvent = Union[Output, Exited, Closed]
"""One numbered event of a process."""


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended."""

    exit_code: int
    """The exit code, -1 when a signal ended the process."""
    signal: str | None = None
    """The signal's name when a signal ended the process."""

    @property
    def success(self) -> bool:
        """Whether the process exited with code 0."""
        return self.exit_code == 0


@dataclass(frozen=True)
class CompletedProcess:
    """A process run to its end by :meth:`execd.Environment.run`."""

    argv: list[str]
    """The command."""
    exit_code: int
    """The exit code, -1 when a signal ended the process."""
    stdout: bytes
    """Its standard output (a PTY process's whole terminal output)."""
    stderr: bytes
    """Its standard error (empty for a PTY process)."""
    signal: str | None = None
    """The signal's name when a signal ended the process."""


@dataclass(frozen=True)
class Metadata:
    """What ``fs/getMetadata`` says about a path."""

    is_directory: bool
    """A directory."""
    is_file: bool
    """A regular file."""
    is_symlink: bool
    """The path itself is a symbolic link."""
    created_at_ms: int
    """Creation time, milliseconds since the epoch (0 if unknown)."""
    modified_at_ms: int
    """Last modification time, milliseconds since the epoch."""
    size: int
    """Size in bytes."""


@dataclass(frozen=True)
class DirectoryEntry:
    """One entry of ``fs/readDirectory``."""

    file_name: str
    """The entry's name (not a path)."""
    is_directory: bool
    """A directory."""
    is_file: bool
    """A regular file."""


@dataclass(frozen=True)
class Rule:
    """An exec-policy rule: an argv prefix and its verdict.

    The first word names a program file (a path, or a name found through the
    process's ``PATH``); the rest match arguments exactly. The longest
    matching prefix wins.
    """

    prefix: Sequence[str]
    """The argv prefix."""
    decision: Verdict
    """What to do with a matching exec."""


@dataclass(frozen=True)
class ExecPolicy:
    """``execPolicy`` for :meth:`execd.Environment.start`: every exec of the
    process tree is held until decided (docs/EXEC_POLICY.md)."""

    rules: Sequence[Rule] = field(default_factory=list)
    """The rules."""
    default: Verdict = "allow"
    """The verdict when no rule matches."""
    ask_timeout_ms: int | None = None
    """How long an ``ask`` waits for the client before denying (server default 30 s)."""

    def to_wire(self) -> dict[str, Any]:
        """The JSON object ``process/start`` carries."""
        wire: dict[str, Any] = {
            "rules": [{"prefix": list(r.prefix), "decision": r.decision} for r in self.rules],
            "default": self.default,
        }
        if self.ask_timeout_ms is not None:
            wire["askTimeoutMs"] = self.ask_timeout_ms
        return wire


@dataclass(frozen=True)
class ApprovalRequest:
    """The server asks whether an exec may run (``exec/approve``)."""

    process_id: str
    """The process tree it belongs to."""
    pid: int
    """The pid calling exec; 0 for the program's own start."""
    path: str
    """The file being executed, every symlink resolved."""
    argv: list[str]
    """Its arguments."""
    cwd: str
    """Its working directory."""
    escalation: bool
    """Whether an ``escalate`` answer can be carried out."""


@dataclass(frozen=True)
class ExecDecision:
    """What was decided for an exec, and by whom (``exec/decision``)."""

    process_id: str
    """The process tree it belongs to."""
    pid: int
    """The pid calling exec."""
    path: str
    """The file executed (or refused)."""
    argv: list[str]
    """Its arguments."""
    decision: Verdict
    """``allow``, ``deny`` or ``escalate``: what happened."""
    decided_by: str
    """``rule``, ``default``, ``client``, ``timeout`` or ``error``."""
    rule: list[str] | None = None
    """The matching rule's prefix, when a rule decided."""
    reason: str | None = None
    """Why, in words, when there is more to say."""


@dataclass(frozen=True)
class ServerInfo:
    """What ``initialize`` told about the server and this session."""

    session_id: str
    """The session's id."""
    server_version: str | None
    """execd's version (absent from other servers)."""
    capabilities: Mapping[str, Any]
    """``capabilities``: ``execPolicy``, ``sandbox``, ``binaryOutput``."""
    cwd: str | None
    """The server's working directory (the default ``cwd`` of processes)."""


@dataclass(frozen=True)
class ProcessInfo:
    """One of the session's processes, as ``process/list`` describes it."""

    process_id: str
    """The process's id."""
    state: ProcessState
    """``running``, ``exited`` (its output may still be draining) or ``closed``."""
    next_seq: int
    """The seq its next event will get."""
    tty: bool
    """Whether it runs under a terminal."""
    exit_code: int | None = None
    """Its exit code, once it exited."""
    signal: str | None = None
    """The signal that ended it, if one did."""
    output_window: int | None = None
    """Its ``outputWindow`` in bytes (flow control), if it has one."""
    acked_seq: int | None = None
    """The highest seq acknowledged with ``process/ack`` (windowed processes)."""

