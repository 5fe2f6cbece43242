"""Python client for execd, the exec server.

Connect to a server, run commands as with :mod:`subprocess`, follow
long-running ones event by event, and read and write the server's files::

    import execd

    async with execd.connect("ws://127.0.0.1:7878") as env:
        r = await env.run(["bash", "-c", "echo hi; exit 3"], cwd="/tmp")
        assert (r.exit_code, r.stdout) == (3, b"hi\\n")

:mod:`execd.sync` has the same calls without ``await`` for scripts;
:class:`EnvironmentManager` holds many servers by name.
"""

from .channel import EventChannel
from .connection import (
    ApprovalCallback,
    Connection,
    DecisionCallback,
    FrameCallback,
    LinkState,
)
from .environment import Environment, connect
from .environments import (
    EnvironmentManager,
    EnvironmentsFileError,
    EnvironmentSpec,
    UnknownEnvironmentError,
    environments_path,
    load_environments,
)
from .errors import (
    CallInterruptedError,
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
    ResumeFailedError,
    SeqGapError,
    ServerError,
    SessionExpiredError,
    UnauthorizedError,
    UnsupportedError,
)
from .fs import FileSystem
from .network import (
    NetworkAnswer,
    NetworkApprovalCallback,
    NetworkDecision,
    NetworkDecisionCallback,
    NetworkPolicy,
    NetworkReply,
    NetworkRequest,
    NetworkRule,
    NetworkVerdict,
    Sandbox,
)
from .options import DEFAULT_OUTPUT_WINDOW, Keepalive, ReconnectPolicy
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
    ProcessInfo,
    ProcessState,
    Rule,
    SandboxType,
    ServerInfo,
    Stream,
    Verdict,
    WriteStatus,
)

from .transfer import TransferFormat
from .walk import Walk, WalkEntry, WalkEntryKind, WalkError
from .watch import ChangeKind, FsChange, FsWatch

__version__ = "0.1.0"
"""This package's version."""

__all__ = [
    "TransferFormat",
    "NetworkAnswer",
    "NetworkApprovalCallback",
    "NetworkDecision",
    "NetworkDecisionCallback",
    "NetworkPolicy",
    "NetworkReply",
    "NetworkRequest",
    "NetworkRule",
    "NetworkVerdict",
    "Sandbox",
    "Walk",
    "WalkEntry",
    "WalkEntryKind",
    "WalkError",
    "ChangeKind",
    "FsChange",
    "FsWatch",
    "connect",
    "Environment",
    "EnvironmentManager",
    "EnvironmentSpec",
    "EnvironmentsFileError",
    "UnknownEnvironmentError",
    "environments_path",
    "load_environments",
    "Process",
    "ReadResult",
    "FileSystem",
    "Connection",
    "EventChannel",
    "ApprovalCallback",
    "DecisionCallback",
    "FrameCallback",
    "LinkState",
    "ReconnectPolicy",
    "Keepalive",
    "DEFAULT_OUTPUT_WINDOW",
    "ProcessInfo",
    "ProcessState",
    "SandboxType",
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
    "ResumeFailedError",
    "SessionExpiredError",
    "CallInterruptedError",
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
