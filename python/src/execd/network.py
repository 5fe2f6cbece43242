"""Network policy: what a sandboxed tree may connect to, and the server's
questions and reports about it. :class:`NetworkPolicy` (with
:class:`NetworkRule`) goes on ``process/start`` (``network_policy=``,
together with a :class:`Sandbox`); an ``ask`` rule becomes a
``network/approve`` request the connection's network approval callback
answers (:class:`NetworkRequest` in, ``"allow"``, ``"deny"`` or a
:class:`NetworkReply` out); every decision is a ``network/decision``
notification (:class:`NetworkDecision`). This module also decodes those
frames and builds the reply.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = [
    "Sandbox",
    "NetworkVerdict",
    "NetworkAnswer",
    "NetworkRule",
    "NetworkPolicy",
    "NetworkRequest",
    "NetworkReply",
    "NetworkDecision",
    "NetworkApprovalCallback",
    "NetworkDecisionCallback",
]

NetworkVerdict = Literal["allow", "deny", "ask"]
"""What a network rule (or the policy's default) decides for a connection."""

NetworkAnswer = Literal["allow", "deny"]
"""The decision on one connection."""


@dataclass(frozen=True)
class Sandbox:
    """execd's own sandbox for a started tree (``process/start`` ``sandbox``)."""

    read_only: bool = True
    """The filesystem is read-only outside ``writable_roots`` (``False``: unrestricted)."""
    writable_roots: Sequence[str] = ()
    """Absolute paths that stay writable under ``read_only``."""
    network: bool = False
    """Direct network access; must stay ``False`` with a network policy."""

    def to_wire(self) -> dict[str, Any]:
        """The ``sandbox`` object of ``process/start``."""
        return {"readOnly": self.read_only, "writableRoots": list(self.writable_roots), "network": self.network}


@dataclass(frozen=True)
class NetworkRule:
    """One rule: ``host`` (a name, ``*.example.com`` or ``*``), optionally one ``port``."""

    host: str
    """The host pattern, matched case-insensitively against the name asked for."""
    decision: NetworkVerdict
    """``allow``, ``deny`` or ``ask`` (the network approval callback decides)."""
    port: int | None = None
    """Only this port (``None``: any)."""

    def to_wire(self) -> dict[str, Any]:
        """The rule as the wire spells it."""
        rule: dict[str, Any] = {"host": self.host, "decision": self.decision}
        if self.port is not None:
            rule["port"] = self.port
        return rule


@dataclass(frozen=True)
class NetworkPolicy:
    """``networkPolicy``: the most specific matching rule decides, else ``default``."""

    rules: Sequence[NetworkRule] = field(default_factory=tuple)
    """The rules, in order (the first of equally specific rules wins)."""
    default: NetworkVerdict = "deny"
    """The decision when no rule matches."""
    ask_timeout_ms: int | None = None
    """How long an ``ask`` waits for the callback before it is denied (server default 30 s)."""

    def to_wire(self) -> dict[str, Any]:
        """The ``networkPolicy`` object of ``process/start``."""
        policy: dict[str, Any] = {"rules": [r.to_wire() for r in self.rules], "default": self.default}
        if self.ask_timeout_ms is not None:
            policy["askTimeoutMs"] = self.ask_timeout_ms
        return policy


@dataclass(frozen=True)
class NetworkRequest:
    """A ``network/approve`` request: a connection of a tree waits for the answer."""

    process_id: str
    """The tree's process id."""
    host: str
    """The host it asked for (a name, never a resolved address)."""
    port: int
    """The port."""
    protocol: str
    """``http`` (a plain request) or ``connect`` (a tunnel)."""
    pid: int | None
    """The process of the tree that opened the connection, when found."""
    argv: list[str]
    """That process's argv (else the tree's)."""


@dataclass(frozen=True)
class NetworkReply:
    """An answer to a :class:`NetworkRequest` that can be remembered."""

    decision: NetworkAnswer
    """``allow`` or ``deny``."""
    for_process: bool = False
    """Apply it to every later connection of the tree to this host and port."""


@dataclass(frozen=True)
class NetworkDecision:
    """A ``network/decision`` notification: how one connection was decided."""

    process_id: str
    """The tree's process id."""
    host: str
    """The host asked for."""
    port: int
    """The port."""
    protocol: str
    """``http`` or ``connect``."""
    decision: NetworkAnswer
    """``allow`` or ``deny``."""
    decided_by: str
    """``rule``, ``default``, ``client``, ``remembered``, ``timeout`` or ``privateAddress``."""
    rule: NetworkRule | None = None
    """The rule that matched, if one did."""
    reason: str | None = None
    """Why, in words, when the server says."""


NetworkApprovalCallback = Callable[
    [NetworkRequest], Union[NetworkAnswer, NetworkReply, Awaitable[Union[NetworkAnswer, NetworkReply]]]
]
"""Decides a ``network/approve`` request: ``"allow"``, ``"deny"`` or a :class:`NetworkReply`."""

NetworkDecisionCallback = Callable[[NetworkDecision], Union[None, Awaitable[None]]]
"""Receives every ``network/decision`` notification, in order."""


def request(params: dict[str, Any]) -> NetworkRequest:
    """A ``network/approve`` request (``KeyError``/``ValueError``/``TypeError`` if malformed)."""
    pid = params.get("pid")
    return NetworkRequest(
        process_id=str(params["processId"]),
        host=str(params["host"]),
        port=int(params["port"]),
        protocol=str(params["protocol"]),
        pid=pid if isinstance(pid, int) else None,
        argv=[str(a) for a in params.get("argv", [])],
    )


async def reply(on_approve: NetworkApprovalCallback, request_id: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The reply to a ``network/approve`` request, as ``on_approve`` decides it
    (an error reply, which the server takes as deny, if the request is
    malformed or the callback fails or answers something else)."""
    try:
        answer = on_approve(request(params))
        decided = await answer if inspect.isawaitable(answer) else answer
        if isinstance(decided, str):
            decided = NetworkReply(decided)
        if not isinstance(decided, NetworkReply) or decided.decision not in ("allow", "deny"):
            raise ValueError(f"the network approval callback answered {decided!r}")
        return {"id": request_id, "result": {"decision": decided.decision, "forProcess": decided.for_process}}
    except Exception as err:
        return {"id": request_id, "error": {"code": -32603, "message": f"network approval failed: {err}"}}


def decision(params: dict[str, Any]) -> NetworkDecision | None:
    """A ``network/decision`` notification (``None`` if malformed)."""
    try:
        rule = params.get("rule")
        reason = params.get("reason")
        verdict = params["decision"]
        if verdict not in ("allow", "deny"):
            return None
        return NetworkDecision(
            process_id=str(params["processId"]),
            host=str(params["host"]),
            port=int(params["port"]),
            protocol=str(params["protocol"]),
            decision=verdict,
            decided_by=str(params.get("decidedBy", "")),
            rule=(
                NetworkRule(str(rule["host"]), rule["decision"], rule.get("port"))
                if isinstance(rule, dict)
                else None
            ),
            reason=reason if isinstance(reason, str) else None,
        )
    except (KeyError, TypeError, ValueError):
        return None
