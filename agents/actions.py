"""The actions agent: what people did about accounts, from the actions topic into the
read model.

Each message is one action (``streams/actions.py``). It is checked as strictly as any
input and recorded on its account by id, so a redelivery, a rebuild replaying the topic
or an action the API already applied at once (read-your-writes) changes nothing. A
message that is not a valid action goes to the events dead-letter topic with the reason;
the stream goes on. While Redis is unreachable the message is retried with backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from agents import metrics
from state.readmodel import ReadModel, while_redis_is_down
from streams.actions import ACTIONS, ActionError
from streams.dlq import DEAD_LETTERS, DeadLetter
from streams.settings import Settings

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

Outcome = Literal["applied", "duplicate", "invalid"]


class ActionApplier:
    """Applies action messages to a read model; usable without Faust (tests, rebuild)."""

    def __init__(self, readmodel: ReadModel,
                 dead_letter: Callable[[DeadLetter], Awaitable[None]] | None = None) -> None:
        self.readmodel = readmodel
        self._dead_letter = dead_letter

    async def handle(self, raw: bytes | None) -> Outcome:
        """Apply one message; Redis errors propagate (see :meth:`process`)."""
        try:
            action = ACTIONS.decode(raw or b"")
        except ActionError as exc:
            metrics.EVENTS_DEAD_LETTERED.labels(reason="invalid_action").inc()
            log.warning("action dead-lettered: %s", exc)
            if self._dead_letter is not None:
                await self._dead_letter(DeadLetter(
                    "invalid_action", str(exc)[:500], "actions", None, time.time(),
                    raw=bytes(raw or b"")[:65_536]))
            return "invalid"
        return "applied" if await self.readmodel.apply_action(action) else "duplicate"

    async def process(self, raw: bytes | None, *, redis_attempts: int | None = None
                      ) -> Outcome:
        """:meth:`handle`, waiting out Redis outages (up to ``redis_attempts``; None: until
        Redis answers), since skipping the action would lose it from the read model."""
        return await while_redis_is_down(lambda: self.handle(raw), redis_attempts, "action")


def register(app: faust.App, settings: Settings) -> None:
    """Declare the actions agent on ``app``."""
    actions = app.topic(settings.topics.actions, key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw")
    dlq = app.topic(settings.topics.events_dlq, key_type=bytes, value_type=bytes,
                    key_serializer="raw", value_serializer="raw")

    async def dead_letter(record: DeadLetter) -> None:
        await dlq.send(key=DEAD_LETTERS.key(record), value=DEAD_LETTERS.encode(record))

    holder: dict[str, ActionApplier] = {}

    @app.agent(actions, name="telltale.actions")
    async def apply_actions(stream: Any) -> Any:
        async for raw in stream:
            if "a" not in holder:
                holder["a"] = ActionApplier(ReadModel.of_app(app, settings), dead_letter)
            await holder["a"].process(raw)
            metrics.MESSAGES_PROCESSED.labels(agent="actions").inc()
