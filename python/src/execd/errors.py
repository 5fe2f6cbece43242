"""The errors of the execd client, mirroring the Rust client's.

``ClientError`` (crates/client/src/error.rs) and ``EnvError``
(crates/environment/src/error.rs) become one hierarchy under
:class:`ExecdError`: failures to connect (:class:`ConnectError` and its
refusals), a connection that ended (:class:`ConnectionLostError`), the
server's JSON-RPC errors by code (:class:`ServerError` and its subclasses),
a session that could not be resumed after a lost connection
(:class:`ResumeFailedError`, :class:`SessionExpiredError`), a call cut by
a lost connection that is not safe to repeat (:class:`CallInterruptedError`),
calls that got no answer in time (:class:`RequestTimeoutError`) and a peer
that broke the protocol (:class:`ProtocolError`, e.g. a seq gap).
"""

from __future__ import annotations

from typing import Any

__all__ = [
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
    "server_error",
]


class ExecdError(Exception):
    """Base class of every error this package raises."""


class ConnectError(ExecdError):
    """The connection could not be opened (nothing listens, bad URL, TLS, timeout)."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        """The URL that was tried."""
        self.reason = reason
        """Why it failed."""
        super().__init__(f"cannot connect to {target}: {reason}")


class UnauthorizedError(ConnectError):
    """The server answered the upgrade with HTTP 401: a missing or wrong token."""

    def __init__(self, target: str, sent_token: bool) -> None:
        self.sent_token = sent_token
        """Whether a token was sent (then it was the wrong one)."""
        if sent_token:
            reason = (
                f"the server at {target} refused the token (HTTP 401): "
                "set EXECD_TOKEN or pass token= with this server's token"
            )
        else:
            reason = (
                f"the server at {target} requires a token (HTTP 401) and none was found: "
                "set EXECD_TOKEN or pass token= (the default token file is read only "
                "for servers on loopback)"
            )
        super().__init__(target, reason)
        self.args = (reason,)

    def __str__(self) -> str:
        return self.reason


class RefusedError(ConnectError):
    """The server answered the upgrade with another HTTP status (403, 503...)."""

    def __init__(self, target: str, status: int, reason: str) -> None:
        self.status = status
        """The HTTP status."""
        message = f"the server at {target} refused the connection (HTTP {status}): {reason}"
        super().__init__(target, reason)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


class ConnectionLostError(ExecdError):
    """The connection ended (the server went away, or the client closed it)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        """Why the connection ended."""
        super().__init__(f"connection lost: {reason}")


class ResumeFailedError(ConnectionLostError):
    """The connection was lost and the session could not be resumed in time
    (the reconnect policy's ``give_up_after`` passed, or the credential was
    refused); every call and process of the session fails with it."""

    def __init__(self, session_id: str, reason: str) -> None:
        self.session_id = session_id
        """The session that was being resumed."""
        super().__init__(reason)


class SessionExpiredError(ResumeFailedError):
    """The server no longer has the session: it answered ``unknown or expired
    session`` (its detach grace passed, or it was restarted), or no server
    listens at the address any more."""


class CallInterruptedError(ExecdError):
    """A call was in flight when the connection was lost and is not safe to
    repeat (``process/signal``, an appending ``fs/writeFile``, a write
    without ``writeId``): it may or may not have been applied. The session
    itself goes on (the Rust client's ``ClientError::Interrupted``)."""

    def __init__(self, method: str) -> None:
        self.method = method
        """The method that was interrupted."""
        super().__init__(
            f"{method} was interrupted by a lost connection; it may or may not have been applied"
        )


class ServerError(ExecdError):
    """The server answered a request with a JSON-RPC error."""

    code: int
    """The JSON-RPC error code."""
    message: str
    """The server's message (it names the offending value)."""
    data: Any
    """The error's ``data`` member, if any (e.g. which limit refused the request)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{message} (code {code})")


class NotFoundError(ServerError):
    """A path or program that does not exist (-32004)."""


class InvalidInputError(ServerError):
    """Bad params: a relative path, empty argv, a missing cwd... (-32602)."""


class InvalidRequestError(ServerError):
    """Unknown process, duplicate process id, wrong call order (-32600)."""


class UnsupportedError(ServerError):
    """The server does not serve this method (-32601)."""


class FailedError(ServerError):
    """The operation failed on the server's machine (-32603 and other codes)."""


class LimitExceededError(InvalidRequestError):
    """Refused by one of the server's resource limits (-32600 with ``data.limit``).

    Some are worth retrying later, e.g. a full stdin queue
    (``limit == "maxStdinQueueBytes"``).
    """

    limit: str
    """The limit's name (``maxProcesses``, ``maxStdinQueueBytes``...)."""
    value: int
    """The limit's value."""

    def __init__(self, code: int, message: str, data: Any) -> None:
        super().__init__(code, message, data)
        self.limit = str(data.get("limit", "")) if isinstance(data, dict) else ""
        value = data.get("value") if isinstance(data, dict) else None
        self.value = value if isinstance(value, int) else 0


def server_error(code: int, message: str, data: Any = None) -> ServerError:
    """The :class:`ServerError` subclass for a JSON-RPC error object."""
    if code == -32600 and isinstance(data, dict) and isinstance(data.get("limit"), str):
        return LimitExceededError(code, message, data)
    kind: type[ServerError] = {
        -32004: NotFoundError,
        -32602: InvalidInputError,
        -32600: InvalidRequestError,
        -32601: UnsupportedError,
    }.get(code, FailedError)
    return kind(code, message, data)


class RequestTimeoutError(ExecdError, TimeoutError):
    """A request got no answer within its time."""

    def __init__(self, method: str, after: float) -> None:
        self.method = method
        """The method called."""
        self.after = after
        """Seconds waited."""
        super().__init__(f"{method} got no answer within {after:g} s")


class ProcessTimeoutError(ExecdError, TimeoutError):
    """:meth:`execd.Environment.run` ran out of time; the process was terminated.

    Like :class:`subprocess.TimeoutExpired`, it carries what was printed so far.
    """

    def __init__(self, argv: list[str], timeout: float, stdout: bytes, stderr: bytes) -> None:
        self.argv = argv
        """The command."""
        self.timeout = timeout
        """The time it had, in seconds."""
        self.stdout = stdout
        """Its standard output (or terminal output) up to then."""
        self.stderr = stderr
        """Its standard error up to then."""
        super().__init__(f"{argv!r} did not finish within {timeout:g} s and was terminated")


class ProtocolError(ExecdError):
    """The server broke the protocol (a malformed frame or result)."""


class SeqGapError(ProtocolError):
    """A process's events did not arrive in seq order without gaps."""

    def __init__(self, process_id: str, expected: int, got: int) -> None:
        self.process_id = process_id
        """The process whose events broke order."""
        self.expected = expected
        """The seq that should have come."""
        self.got = got
        """The seq that came."""
        super().__init__(f"process {process_id}: expected event seq {expected}, got {got}")
