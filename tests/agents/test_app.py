"""The agents' shared machinery: a message in hand is finished before an agent stops."""

from __future__ import annotations

import asyncio

import pytest

from agents.app import finish_even_if_cancelled


async def test_a_cancelled_agent_finishes_the_message_in_hand_then_stops() -> None:
    """Faust cancels an agent at shutdown and then acks and commits the message it was on:
    cut between its writes and its outputs, that message would be committed half done."""
    steps: list[str] = []
    outputs_may_go = asyncio.Event()

    async def message() -> None:
        steps.append("writes")
        await outputs_may_go.wait()  # e.g. the producer waiting on the broker
        steps.append("outputs")

    agent = asyncio.ensure_future(finish_even_if_cancelled(message()))
    for _ in range(10):  # until the message is under way
        if steps:
            break
        await asyncio.sleep(0)
    assert steps == ["writes"]
    agent.cancel()
    await asyncio.sleep(0.01)
    assert not agent.done(), "the agent waits for its message"
    outputs_may_go.set()
    with pytest.raises(asyncio.CancelledError):
        await agent
    assert steps == ["writes", "outputs"]
