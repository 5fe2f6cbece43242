"""Named environments: many execd servers from one harness, by name.

An :class:`EnvironmentManager` holds names → URL and credential (from code,
or the environments file shared with the Rust client and the ``execd``
CLI), connects to each on first use, keeps the connection, and is safe to
use from many asyncio tasks at once (concurrent first uses of a name share
one connection attempt; a failed attempt is not kept).

The file (:func:`environments_path`): ``$EXECD_ENVIRONMENTS``, else
``$XDG_CONFIG_HOME/execd/environments.toml``, else
``~/.config/execd/environments.toml``; a missing file means no named
environments, a malformed one raises :class:`EnvironmentsFileError` naming
the file and the line or key::

    [environments.build]              # name: [A-Za-z0-9_.-]+
    url = "wss://10.0.0.5:7878"       # required: ws:// or wss://
    token_file = "/run/secrets/tok"   # optional; or token = "..." (not both)
    ca_file = "/etc/execd/ca.pem"     # optional, for wss:// with a private CA

Without ``token`` or ``token_file`` the token is looked up as for a single
URL (``EXECD_TOKEN``, else the default token file for loopback servers).
``EXECD_URL`` stays the default single environment: the name ``default``
means it unless the file (or code) defines ``default``.
"""

from __future__ import annotations

import asyncio
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from . import _token
from .connection import default_url
from .environment import Environment, connect
from .errors import ConnectError, ExecdError

__all__ = [
    "EnvironmentSpec",
    "EnvironmentManager",
    "EnvironmentsFileError",
    "UnknownEnvironmentError",
    "environments_path",
    "load_environments",
    "DEFAULT_NAME",
]

DEFAULT_NAME = "default"
"""The name of ``EXECD_URL``'s environment when none is defined under it."""

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_KEYS = ("url", "token", "token_file", "ca_file")


class EnvironmentsFileError(ExecdError):
    """The environments file is malformed (the message names the file and the line or key)."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        """The file."""
        self.problem = problem
        """What is wrong, and where."""
        super().__init__(f"{path}: {problem}")


class UnknownEnvironmentError(ExecdError, KeyError):
    """No environment has that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        """The name asked for."""
        listed = ", ".join(known) if known else "none"
        super().__init__(f"no environment named {name!r} (known: {listed})")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class EnvironmentSpec:
    """Where a named environment is and how to authenticate to it."""

    name: str
    """Its name."""
    url: str
    """The server's ``ws://`` or ``wss://`` URL."""
    token: str | None = None
    """The token to send, given inline."""
    token_file: str | None = None
    """A file holding the token (read at each connection)."""
    ca_file: str | None = None
    """A PEM file of the private CA that signed a ``wss://`` server's certificate."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"environment name {self.name!r} is not [A-Za-z0-9_.-]+")
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"environment {self.name!r}: url {self.url!r} is not ws:// or wss://")
        if self.token is not None and self.token_file is not None:
            raise ValueError(f"environment {self.name!r}: token and token_file are both set")

    def resolve_token(self) -> str | None:
        """The token to send: ``token``, else ``token_file``'s contents, else
        ``None`` (the usual lookup: ``EXECD_TOKEN``, the default token file)."""
        if self.token is not None:
            return _token.check_token(self.token, f"environment {self.name!r}")
        if self.token_file is not None:
            try:
                text = Path(self.token_file).read_text()
            except OSError as err:
                raise _token.TokenProblem(f"cannot read the token file {self.token_file}: {err}") from err
            return _token.check_token(text, self.token_file)
        return None


def environments_path() -> Path:
    """Where the environments file is (whether or not it exists)."""
    explicit = os.environ.get("EXECD_ENVIRONMENTS")
    if explicit:
        return Path(explicit)
    config = os.environ.get("XDG_CONFIG_HOME", "")
    if config and os.path.isabs(config):
        return Path(config) / "execd" / "environments.toml"
    return Path(os.path.expanduser("~")) / ".config" / "execd" / "environments.toml"


def load_environments(path: Path | None = None) -> dict[str, EnvironmentSpec]:
    """The environments in ``path`` (default :func:`environments_path`);
    an empty dict if the file does not exist."""
    path = path or environments_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise EnvironmentsFileError(path, f"cannot read it: {err}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise EnvironmentsFileError(path, f"not valid TOML: {err}") from None
    for key in document:
        if key != "environments":
            raise EnvironmentsFileError(path, f"unknown key {key!r} (only [environments.NAME] tables)")
    tables = document.get("environments", {})
    if not isinstance(tables, dict):
        raise EnvironmentsFileError(path, "'environments' must be a table of [environments.NAME] tables")
    return {name: _spec(path, name, table) for name, table in tables.items()}


def _spec(path: Path, name: str, table: Any) -> EnvironmentSpec:
    where = f"environments.{name}"
    if not _NAME.fullmatch(name):
        raise EnvironmentsFileError(path, f"{where}: the name {name!r} is not [A-Za-z0-9_.-]+")
    if not isinstance(table, dict):
        raise EnvironmentsFileError(path, f"{where} must be a table")
    for key, value in table.items():
        if key not in _KEYS:
            raise EnvironmentsFileError(path, f"{where}.{key}: unknown key (known: {', '.join(_KEYS)})")
        if not isinstance(value, str):
            raise EnvironmentsFileError(path, f"{where}.{key} must be a string")
    url = table.get("url")
    if url is None:
        raise EnvironmentsFileError(path, f"{where}.url is missing (required)")
    if not url.startswith(("ws://", "wss://")):
        raise EnvironmentsFileError(path, f"{where}.url {url!r} is not a ws:// or wss:// URL")
    if "token" in table and "token_file" in table:
        raise EnvironmentsFileError(path, f"{where}: token and token_file are both set (one at most)")
    return EnvironmentSpec(name, url, table.get("token"), table.get("token_file"), table.get("ca_file"))


class EnvironmentManager:
    """Named environments, connected lazily and shared: ``await manager.get("build")``.

    ``options`` are passed to :func:`execd.connect` for every environment
    (``on_approve``, ``timeout``, ``reconnect``, ``output_window``...).
    Use ``async with`` (or :meth:`close`) to close every connection made.
    """

    def __init__(self, environments: Mapping[str, EnvironmentSpec] | None = None, **options: Any) -> None:
        self._specs: dict[str, EnvironmentSpec] = dict(environments or {})
        self._options = options
        self._connecting: dict[str, asyncio.Task[Environment]] = {}

    @classmethod
    def from_config(cls, path: Path | None = None, **options: Any) -> EnvironmentManager:
        """The environments of the environments file (see the module)."""
        return cls(load_environments(path), **options)

    def add(
        self,
        name: str,
        url: str,
        *,
        token: str | None = None,
        token_file: str | None = None,
        ca_file: str | None = None,
    ) -> EnvironmentSpec:
        """Define (or redefine, before it is first used) environment ``name``."""
        if name in self._connecting:
            raise ValueError(f"environment {name!r} is already in use")
        spec = EnvironmentSpec(name, url, token, token_file, ca_file)
        self._specs[name] = spec
        return spec

    def names(self) -> list[str]:
        """Every environment's name (``default`` included)."""
        return sorted({*self._specs, DEFAULT_NAME})

    def spec(self, name: str = DEFAULT_NAME) -> EnvironmentSpec:
        """Where ``name`` is; ``default`` is ``EXECD_URL`` unless defined."""
        if name in self._specs:
            return self._specs[name]
        if name == DEFAULT_NAME:
            return EnvironmentSpec(DEFAULT_NAME, default_url())
        raise UnknownEnvironmentError(name, self.names())

    def connected(self) -> list[str]:
        """The names connected (or connecting) so far."""
        return sorted(self._connecting)

    async def get(self, name: str = DEFAULT_NAME) -> Environment:
        """The environment ``name``, connected on first use; later (and
        concurrent) calls get the same one. A failed connection is not kept."""
        task = self._connecting.get(name)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            spec = self.spec(name)
            task = asyncio.ensure_future(self._connect(spec))
            self._connecting[name] = task
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._connecting.get(name) is task and (task.cancelled() or task.exception()):
                del self._connecting[name]
            raise

    async def _connect(self, spec: EnvironmentSpec) -> Environment:
        try:
            token = spec.resolve_token()
        except _token.TokenProblem as err:
            raise ConnectError(spec.url, f"environment {spec.name!r}: {err}") from None
        return await connect(spec.url, token=token, ca_file=spec.ca_file, **self._options)

    async def close(self) -> None:
        """Close every connection made (their sessions end)."""
        tasks, self._connecting = self._connecting, {}
        for task in tasks.values():
            if not task.done():
                task.cancel()
        for task in tasks.values():
            try:
                environment = await task
            except BaseException:
                continue
            await environment.close()

    async def __aenter__(self) -> EnvironmentManager:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
