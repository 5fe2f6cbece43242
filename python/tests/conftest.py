"""Test fixtures: a real ``execd serve`` on a free loopback port.

The binary is ``$EXECD_BIN``, else ``$CARGO_TARGET_DIR/debug/execd``, else
the repository's ``target/debug/execd``; when none exists it is built with
``cargo build -p execd``. Each server runs in its own process group with its
own state directory (so the user's default token file is never touched) and
is killed when its test (or the session) ends. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import select
import signal
import subprocess
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
TEST_TIMEOUT = 60.0


def run_async(work: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT) -> T:
    """Run a coroutine to its end on a fresh loop, failing after ``timeout`` s."""
    return asyncio.run(asyncio.wait_for(work, timeout))


def _locate_execd() -> Path:
    explicit = os.environ.get("EXECD_BIN")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            pytest.fail(f"EXECD_BIN={explicit} is not a file")
        return path
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    path = target / "debug" / "execd"
    if not path.is_file():
        subprocess.run(["cargo", "build", "-p", "execd"], cwd=REPO, check=True, timeout=1800)
    if not path.is_file():
        pytest.fail(f"cargo build -p execd did not produce {path}")
    return path


class Server:
    """A running ``execd serve``: its URL, token (if any) and state directory."""

    def __init__(
        self, binary: Path, state: Path, args: list[str], token: str | None, listen: str = "ws://127.0.0.1:0"
    ) -> None:
        self.state = state
        self.token = token
        environment = {k: v for k, v in os.environ.items() if k not in ("EXECD_TOKEN", "EXECD_URL")}
        environment["XDG_STATE_HOME"] = str(state)
        self.log = open(state / "server.log", "wb")  # noqa: SIM115
        self.child = subprocess.Popen(
            [str(binary), "serve", "--listen", listen, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=environment,
            start_new_session=True,
        )
        assert self.child.stdout is not None
        ready, _, _ = select.select([self.child.stdout], [], [], START_TIMEOUT)
        if not ready:
            self.kill()
            pytest.fail(f"execd serve printed no URL within {START_TIMEOUT} s")
        line = self.child.stdout.readline().decode().strip()
        if not line.startswith(listen.rsplit(":", 1)[0] + ":"):
            self.kill()
            pytest.fail(f"execd serve's first line is not its URL: {line!r}; log: {self.log_text()}")
        self.url = line

    def log_text(self) -> str:
        """What the server wrote to stderr so far."""
        self.log.flush()
        return (self.state / "server.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the server's whole process group (no close frame) and reap it."""
        if self.child.poll() is None:
            try:
                os.killpg(self.child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.child.wait(timeout=START_TIMEOUT)
        self.log.close()


def start_server(
    binary: Path,
    state: Path,
    args: list[str] | None = None,
    token: str | None = None,
    listen: str = "ws://127.0.0.1:0",
) -> Server:
    """Start ``execd serve`` on ``listen``; with ``token`` it gets a token file holding it."""
    args = list(args or [])
    state.mkdir(parents=True, exist_ok=True)
    if token is not None:
        token_file = state / "server-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        args += ["--token-file", str(token_file)]
    return Server(binary, state, args, token, listen)


@pytest.fixture(scope="session")
def execd_bin() -> Path:
    """The ``execd`` binary under test."""
    return _locate_execd()


@pytest.fixture(scope="session")
def server(execd_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with a token for the whole session."""
    running = start_server(execd_bin, tmp_path_factory.mktemp("server"), token=secrets.token_hex(32))
    yield running
    running.kill()


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see no EXECD_TOKEN/EXECD_URL of the developer and an empty state directory."""
    monkeypatch.delenv("EXECD_TOKEN", raising=False)
    monkeypatch.delenv("EXECD_URL", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "client-state"))

