"""Python client for execd, the exec server.

Connect to a server, run commands as with :mod:`subprocess`, follow
long-running ones event by event, and read and write the server's files::

    import execd

    async with execd.connect("ws://127.0.0.1:7878") as env:
        r = await env.run(["bash", "-c", "echo hi; exit 3"], cwd="/tmp")
        assert (r.exit_code, r.stdout) == (3, b"hi\\n")

:mod:`execd.sync` has the same calls without ``await`` for scripts.
"""

from .connection import (
    ApprovalCallback,
    Connection,
    DecisionCallback,
    EventChannel,
    FrameCallback,
)
from .environment import Environment, connect
from .errors import (
    ConnectError,
    ConnectionLostError,
    ExecdError,
    FailedError,
    InvalidInputError,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
    ProcessTimeoutError,
    ProtocolError,
    RefusedError,
    RequestTimeoutError,
    SeqGapError,
    ServerError,
    UnauthorizedError,
    UnsupportedError,
)
from .fs import FileSystem
from .process import Process, ReadResult
from .types import (
    Answer,
    ApprovalRequest,
    Closed,
    CompletedProcess,
    DirectoryEntry,
    ExecDecision,
    ExecPolicy,
    Exited,
    ExitStatus,
    Metadata,
    Output,
    ProcessEvent,
    Rule,
    ServerInfo,
    Stream,
    Verdict,
    WriteStatus,
)

__version__ = "0.1.0"
"""This package's version."""

__all__ = [
    "connect",
    "Environment",
    "Process",
    "ReadResult",
    "FileSystem",
    "Connection",
    "EventChannel",
    "ApprovalCallback",
    "DecisionCallback",
    "FrameCallback",
    "Answer",
    "ApprovalRequest",
    "Closed",
    "CompletedProcess",
    "DirectoryEntry",
    "ExecDecision",
    "ExecPolicy",
    "Exited",
    "ExitStatus",
    "Metadata",
    "Output",
    "ProcessEvent",
    "Rule",
    "ServerInfo",
    "Stream",
    "Verdict",
    "WriteStatus",
    "ExecdError",
    "ConnectError",
    "UnauthorizedError",
    "RefusedError",
    "ConnectionLostError",
    "ServerError",
    "NotFoundError",
    "InvalidInputError",
    "InvalidRequestError",
    "UnsupportedError",
    "FailedError",
    "LimitExceededError",
    "RequestTimeoutError",
    "ProcessTimeoutError",
    "ProtocolError",
    "SeqGapError",
]
