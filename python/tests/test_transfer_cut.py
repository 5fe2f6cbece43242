"""An upload cut midway (the connection reset by the fault-injecting proxy,
tests/proxy.py, mid-frame on the way to the server): ``write_file`` of
more than 1 MiB streams through ``fs/upload``, the cut fails it with
:class:`~execd.CallInterruptedError` (a stream does not survive its
connection), nothing appears under the final name and the server removes
its temporary file; the session is resumed and the same upload then
arrives byte-exact. A download cut midway fails alike and the connection
goes on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import execd
from conftest import Server, run_async
from proxy import FaultProxy
from test_resume import FAST, eventually, port_of

MIB = 1 << 20


def test_an_upload_cut_midway_fails_cleanly_and_a_retry_is_exact(server: Server, tmp_path: Path) -> None:
    data = os.urandom(8 * MIB + 4321)
    target = tmp_path / "uploaded"

    async def body() -> None:
        async with FaultProxy(port_of(server)) as proxy:
            async with execd.connect(proxy.url, token=server.token, reconnect=FAST) as env:
                assert env.info.capabilities.get("fileTransfers") is True
                proxy.cut_after(3 * MIB, up=True)
                with pytest.raises(execd.CallInterruptedError, match="interrupted"):
                    await asyncio.wait_for(env.fs.write_file(str(target), data), 30)
                assert proxy.cuts == 1
                assert not target.exists(), "a half-written file under the final name"
                await eventually(lambda: os.listdir(tmp_path) == [], "the upload's temporary file removed")
                await eventually(lambda: env.connection.state == "connected", "the session resumed")
                assert env.connection.resumes == 1

                await env.fs.write_file(str(target), data)
                assert target.read_bytes() == data
                assert os.listdir(tmp_path) == ["uploaded"]

                proxy.cut_after(3 * MIB)
                got = bytearray()
                with pytest.raises(execd.CallInterruptedError, match="interrupted"):
                    async for piece in env.fs.download(str(target)):
                        got.extend(piece)
                assert len(got) < len(data) and data.startswith(bytes(got))
                assert (await env.run(["echo", "after"])).stdout == b"after\n"
                assert env.connection.resumes == 2

    run_async(body())
