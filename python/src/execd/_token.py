"""Which bearer token a connection sends, resolved as the Rust client does.

An explicit token first, then ``EXECD_TOKEN``, then the default token file
(``$XDG_STATE_HOME/execd/token``, else ``~/.local/state/execd/token``), the
last only for a server on a loopback address, so the local server's token
never travels to another host. The default file must be a regular file of
this user that no one else may read or write.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

TOKEN_VARIABLE = "EXECD_TOKEN"


class TokenProblem(Exception):
    """The token could not be read or is unusable (turned into a ConnectError)."""


def check_token(text: str, origin: str) -> str:
    """``text`` trimmed, if it fits an HTTP header; else :class:`TokenProblem`."""
    token = text.strip()
    if not token:
        raise TokenProblem(f"the token from {origin} is empty")
    if not all(0x21 <= ord(c) <= 0x7E for c in token):
        raise TokenProblem(
            f"the token from {origin} holds a space or a non-printable or non-ASCII "
            "character; it must fit an HTTP header"
        )
    return token


def default_path() -> Path | None:
    """Where the default token file lives (``None`` without a state directory)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if state and os.path.isabs(state):
        return Path(state) / "execd" / "token"
    home = os.environ.get("HOME", "")
    if not (home and os.path.isabs(home)):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
    return Path(home) / ".local" / "state" / "execd" / "token"


def read_default(path: Path) -> str | None:
    """The default file's token, ``None`` if the file does not exist."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise TokenProblem(f"cannot read the token file {path}: {err}") from err
    if not stat.S_ISREG(info.st_mode):
        raise TokenProblem(f"the token file {path} is not a regular file")
    if info.st_uid != os.getuid():
        raise TokenProblem(
            f"the token file {path} belongs to uid {info.st_uid}, not to this user "
            f"(uid {os.getuid()})"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise TokenProblem(
            f"the token file {path} is open to other users (mode {mode:04o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        text = path.read_text()
    except OSError as err:
        raise TokenProblem(f"cannot read the token file {path}: {err}") from err
    return check_token(text, str(path))


def url_is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (``localhost``, 127.0.0.0/8, ``[::1]``)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve(url: str, explicit: str | None) -> str | None:
    """The token to send to ``url``, or ``None`` for none."""
    if explicit is not None:
        return check_token(explicit, "the token= argument")
    from_env = os.environ.get(TOKEN_VARIABLE, "")
    if from_env.strip():
        return check_token(from_env, TOKEN_VARIABLE)
    if not url_is_loopback(url):
        return None
    path = default_path()
    return read_default(path) if path is not None else None
