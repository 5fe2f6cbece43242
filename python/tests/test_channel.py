"""The event channel's merge across a resume, on its own (as the Rust
router's unit tests): catch-up and live events interleaved with repeats
come out once each in seq order; a gap left after catching up is an error;
taken output is acknowledged a quarter window at a time."""

from __future__ import annotations

import asyncio

import pytest

import execd
from conftest import run_async


def out(seq: int, data: bytes = b"x") -> execd.Output:
    return execd.Output(seq, "stdout", data)


async def drain(channel: execd.EventChannel) -> list[int]:
    seqs: list[int] = []
    while True:
        try:
            event = await asyncio.wait_for(channel.get(), 0.05)
        except asyncio.TimeoutError:
            return seqs
        seqs.append(event.seq)


def test_catching_up_merges_by_seq() -> None:
    async def body() -> None:
        channel = execd.EventChannel("p")
        channel.deliver(out(1))
        channel.begin_catch_up()
        channel.deliver(out(5))  # live, early: held
        channel.deliver(out(4))
        for seq in (1, 2, 3, 4):  # the catch-up read
            channel.deliver(out(seq))
        channel.deliver(out(5))  # a live repeat
        channel.caught_up()
        channel.deliver(execd.Closed(6))
        assert await drain(channel) == [1, 2, 3, 4, 5, 6]
        assert channel.closed

    run_async(body())


def test_a_gap_left_after_catching_up_is_an_error() -> None:
    async def body() -> None:
        channel = execd.EventChannel("p")
        channel.begin_catch_up()
        channel.deliver(out(3))
        channel.caught_up()
        with pytest.raises(execd.SeqGapError, match="expected event seq 1, got 3"):
            await channel.get()

    run_async(body())


def test_taken_output_is_acknowledged_a_quarter_window_at_a_time() -> None:
    async def body() -> None:
        acks: list[tuple[str, int]] = []
        channel = execd.EventChannel("p")
        channel.acking(400, lambda pid, seq: acks.append((pid, seq)))
        for seq in range(1, 9):
            channel.deliver(out(seq, b"y" * 60))
        assert acks == []  # delivered, not yet taken
        await drain(channel)
        assert acks == [("p", 2), ("p", 4), ("p", 6), ("p", 8)]

    run_async(body())
