"""Named environments: the environments file (where it is, what it holds,
every malformation named with the file and the line or key), ``default``
as ``EXECD_URL``, and one harness driving several real servers at once by
name, connected lazily and shared between concurrent users."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import uuid
from pathlib import Path

import pytest

import execd
from conftest import Server, run_async, start_server

SERVERS = 6


def test_file_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EXECD_ENVIRONMENTS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert execd.environments_path() == tmp_path / "config" / "execd" / "environments.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert execd.environments_path() == tmp_path / "home" / ".config" / "execd" / "environments.toml"
    monkeypatch.setenv("EXECD_ENVIRONMENTS", str(tmp_path / "mine.toml"))
    assert execd.environments_path() == tmp_path / "mine.toml"
    # Missing: no named environments, not an error.
    assert execd.load_environments() == {}


def test_file_contents(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(
        """
[environments.build]
url = "wss://build.example:7878"
token_file = "/run/secrets/tok"
ca_file = "/etc/execd/ca.pem"

[environments."gpu-1.eu_west"]
url = "ws://127.0.0.1:9000"
token = "t0ken"

[environments.plain]
url = "ws://127.0.0.1:9001"
"""
    )
    assert execd.load_environments(path) == {
        "build": execd.EnvironmentSpec(
            "build", "wss://build.example:7878", token_file="/run/secrets/tok", ca_file="/etc/execd/ca.pem"
        ),
        "gpu-1.eu_west": execd.EnvironmentSpec("gpu-1.eu_west", "ws://127.0.0.1:9000", token="t0ken"),
        "plain": execd.EnvironmentSpec("plain", "ws://127.0.0.1:9001"),
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[environments.a]\nurl = "ws://h:1"\nurl2 = 3 = 4\n', r"not valid TOML: .*line 3"),
        ('[environments.a]\nurl = "ws://h:1"\ntoken_fiel = "/x"\n', r"environments\.a\.token_fiel: unknown key"),
        ('[environments.a]\ntoken = "x"\n', r"environments\.a\.url is missing"),
        ('[environments.a]\nurl = "http://h:1"\n', r"environments\.a\.url 'http://h:1' is not a ws://"),
        ('[environments.a]\nurl = "ws://h:1"\ntoken = "x"\ntoken_file = "/y"\n', r"both set"),
        ('[environments."a b"]\nurl = "ws://h:1"\n', r"the name 'a b' is not"),
        ('[environments.a]\nurl = 7\n', r"environments\.a\.url must be a string"),
        ('[servers.a]\nurl = "ws://h:1"\n', r"unknown key 'servers'"),
        ('environments = 3\n', r"must be a table"),
    ],
)
def test_malformed_file_is_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(text)
    with pytest.raises(execd.EnvironmentsFileError, match=problem) as err:
        execd.load_environments(path)
    assert str(path) in str(err.value)


def test_default_is_execd_url(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = execd.EnvironmentManager({"a": execd.EnvironmentSpec("a", "ws://127.0.0.1:1")})
    assert manager.spec().url == "ws://127.0.0.1:7878"
    monkeypatch.setenv("EXECD_URL", "ws://127.0.0.1:4242")
    assert manager.spec("default").url == "ws://127.0.0.1:4242"
    assert manager.names() == ["a", "default"]
    with pytest.raises(execd.UnknownEnvironmentError, match="no environment named 'b' .known: a, default"):
        manager.spec("b")
    manager.add("default", "ws://127.0.0.1:5555")
    assert manager.spec().url == "ws://127.0.0.1:5555"


def test_one_harness_drives_many_servers_by_name(
    execd_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers: list[Server] = []
    try:
        lines = []
        for i in range(SERVERS):
            server = start_server(execd_bin, tmp_path / f"s{i}", token=secrets.token_hex(16))
            servers.append(server)
            assert server.token is not None
            if i % 2:
                secret = tmp_path / f"token-{i}"
                secret.write_text(server.token + "\n")
                credential = f'token_file = "{secret}"'
            else:
                credential = f'token = "{server.token}"'
            lines.append(f'[environments.box-{i}]\nurl = "{server.url}"\n{credential}\n')
        config = tmp_path / "environments.toml"
        config.write_text("\n".join(lines))
        monkeypatch.setenv("EXECD_ENVIRONMENTS", str(config))
        # The default one (EXECD_URL) uses EXECD_TOKEN, as a single URL does.
        monkeypatch.setenv("EXECD_URL", servers[0].url)
        monkeypatch.setenv("EXECD_TOKEN", servers[0].token or "")

        async def drive(manager: execd.EnvironmentManager, name: str) -> tuple[str, bytes, bytes]:
            env = await manager.get(name)
            marker = f"/tmp/execd-py-envs-{uuid.uuid4().hex}"
            r = await env.run(["bash", "-c", 'echo "$NAME:$$"; cat'], env={"NAME": name}, input=name.encode())
            await env.fs.write_file(marker, name.encode() * 1000)
            data = await env.fs.read_file(marker)
            await env.fs.remove(marker)
            assert r.exit_code == 0 and r.stdout.startswith(f"{name}:".encode())
            return name, r.stdout.split(b"\n", 1)[1], data

        async def body() -> None:
            async with execd.EnvironmentManager.from_config() as manager:
                names = [f"box-{i}" for i in range(SERVERS)]
                assert manager.names() == sorted([*names, "default"])
                assert manager.connected() == []  # lazily: nothing yet
                # Concurrent first uses of one name share one connection.
                same = await asyncio.gather(*(manager.get("box-3") for _ in range(5)))
                assert all(env is same[0] for env in same)
                assert manager.connected() == ["box-3"]
                results = await asyncio.gather(*(drive(manager, n) for n in [*names, *names]))
                for name, echoed, data in results:
                    assert echoed == name.encode() and data == name.encode() * 1000
                envs = [await manager.get(n) for n in names]
                assert len({env.info.session_id for env in envs}) == SERVERS
                default = await manager.get()
                assert (await default.run(["echo", "d"])).stdout == b"d\n"
                assert manager.connected() == sorted([*names, "default"])
            for env in envs:  # Leaving the manager closed them all.
                with pytest.raises(execd.ConnectionLostError):
                    await env.run(["true"])

        run_async(body(), timeout=120)
    finally:
        for server in servers:
            server.kill()


def test_a_failed_connection_is_not_kept(execd_bin: Path, tmp_path: Path) -> None:
    server = start_server(execd_bin, tmp_path / "s", token=secrets.token_hex(16))
    try:

        async def body() -> None:
            manager = execd.EnvironmentManager()
            manager.add("x", server.url, token_file=str(tmp_path / "missing"))
            with pytest.raises(execd.ConnectError, match="environment 'x': cannot read the token file"):
                await manager.get("x")
            assert manager.connected() == []
            manager.add("x", server.url, token=server.token)
            assert (await (await manager.get("x")).run(["echo", "ok"])).stdout == b"ok\n"
            await manager.close()

        run_async(body())
    finally:
        server.kill()


def test_ca_file_for_a_private_ca(execd_bin: Path, tmp_path: Path) -> None:
    """A wss:// server with a certificate of its own: trusted through ca_file, refused without."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    server = start_server(
        execd_bin,
        tmp_path / "tls",
        ["--tls-cert", str(cert), "--tls-key", str(key)],
        token=secrets.token_hex(16),
        listen="wss://127.0.0.1:0",
    )
    try:

        async def body() -> None:
            async with execd.EnvironmentManager() as manager:
                manager.add("tls", server.url, token=server.token, ca_file=str(cert))
                manager.add("untrusted", server.url, token=server.token)
                assert (await (await manager.get("tls")).run(["echo", "tls"])).stdout == b"tls\n"
                with pytest.raises(execd.ConnectError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                    await manager.get("untrusted")

        run_async(body())
    finally:
        server.kill()
