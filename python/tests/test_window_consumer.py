"""Flow control with a slow consumer, against a real server: a windowed
process's events are acknowledged as they are taken (never ahead of the
consumer), so what the client holds untaken stays within the window
however slowly the events are taken, and the whole output still arrives
in order; without a window the same output piles up in the client."""

from __future__ import annotations

import asyncio

import execd
from conftest import Server, run_async
from test_resume import eventually

WINDOW = 64 * 1024
LINES = 200_000  # 1.3 MB: twenty windows


async def acked_seq(env: execd.Environment, process: execd.Process) -> int:
    """The seq the server says the client acknowledged (``process/list``)."""
    [info] = [i for i in await env.list_processes() if i.process_id == process.id]
    return info.acked_seq or 0


def test_a_slow_consumer_holds_at_most_the_window(server: Server) -> None:
    expected = b"".join(b"%d\n" % i for i in range(1, LINES + 1))

    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            p = await env.start(["seq", "1", str(LINES)], output_window=WINDOW)
            got = bytearray()
            most_held = 0
            taken_seq = 0
            checks = 0
            last_acked = 0
            async for event in p:
                taken_seq = event.seq
                if isinstance(event, execd.Output):
                    # Held untaken just before this event was taken.
                    most_held = max(most_held, p.buffered_bytes + len(event.data))
                    got.extend(event.data)
                    # A slow consumer: the server runs ahead as far as it may.
                    await asyncio.sleep(0.002)
                    if len(got) >= (checks + 1) * 4 * WINDOW:
                        checks += 1
                        # Acks follow what was taken, never what merely arrived.
                        acked = await acked_seq(env, p)
                        assert acked <= taken_seq, (acked, taken_seq)

                        async def moved_on(since: int = last_acked) -> bool:
                            return await acked_seq(env, p) > since

                        await eventually(moved_on, "an ack for the output taken since the last check")
                        last_acked = await acked_seq(env, p)
            assert bytes(got) == expected
            assert most_held <= WINDOW, f"{most_held} bytes held untaken, over the {WINDOW} window"
            assert most_held > 0 and checks >= 4
            assert p.buffered_bytes == 0

    run_async(body(), timeout=120)


def test_without_a_window_output_piles_up_in_the_client(server: Server) -> None:
    async def body() -> None:
        async with execd.connect(server.url, token=server.token, output_window=None) as env:
            p = await env.start(["seq", "1", str(LINES)])
            await p.wait(30)
            # Nothing taken, everything held (all output comes before the exit).
            assert p.buffered_bytes == len(b"".join(b"%d\n" % i for i in range(1, LINES + 1)))

    run_async(body())
