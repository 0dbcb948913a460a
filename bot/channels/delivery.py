"""The deliverer: sends a channel's queued messages (`bot.channels.records`), for ever.

One task per channel in the Rasa server. Messages to one person go in order, one at a
time and at the platform's pace; different people do not wait for each other. A message
is taken with a lease, so two replicas never send it both; it leaves the queue only once
the platform took it. What the platform may take later (rate limit, outage, network) is
tried again with backoff, as long as it takes: a long outage delays messages, it does not
lose them. What it refuses for good (blocked by the person, no such chat) is dropped and
logged, without its text or its recipient.
"""
import asyncio
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Awaitable, Callable, Dict, Optional, Set

from bot.channels.records import ChannelRecords, Outgoing

logger = logging.getLogger(__name__)

POLL_S = 1.0
MAX_BACKOFF_S = 300.0
CONCURRENT_PEOPLE = 8


class Verdict(Enum):
    SENT = "sent"
    RETRY = "retry"  # try again after `delay_s`
    HOLD = "hold"  # keep the person's messages until they write again (WhatsApp)
    DROP = "drop"  # refused for good


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    delay_s: float = 0.0
    reason: str = ""


SENT = Outcome(Verdict.SENT)


def backoff(attempts: int, base_s: float = 1.0) -> float:
    """1, 2, 4 ... seconds, at most MAX_BACKOFF_S."""
    return min(MAX_BACKOFF_S, base_s * 2 ** min(attempts, 16))


Send = Callable[[Outgoing], Awaitable[Outcome]]


class Deliverer:
    """Drains one channel's queue with `send`; `pace_s` between two messages to one person."""

    def __init__(self, records: ChannelRecords, channel: str, send: Send,
                 pace_s: float = 0.0) -> None:
        self.records = records
        self.channel = channel
        self.send = send
        self.pace_s = pace_s
        self._wake = asyncio.Event()
        self._in_flight: Set[str] = set()
        self._not_before: Dict[str, float] = {}
        self._task: Optional[asyncio.Task] = None
        self._stopping = False

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self.run(), name=f"{self.channel} delivery")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop after the messages being sent now are recorded (or after `grace_s`)."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        except asyncio.TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self.deliver_due()
            except Exception as failure:  # noqa: BLE001 - delivery must outlive any one failure
                logger.error("%s delivery failed: %s", self.channel, type(failure).__name__)
                logger.debug("%s delivery failure", self.channel, exc_info=True)
            if self._stopping:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass

    async def deliver_due(self) -> int:
        """Send what is due now, one message per person; how many were tried."""
        loop = asyncio.get_running_loop()
        due = await asyncio.to_thread(self.records.due, self.channel)
        now = loop.time()
        chosen = [
            message for message in due
            if message.conversation not in self._in_flight
            and self._not_before.get(message.conversation, 0.0) <= now
        ][:CONCURRENT_PEOPLE]
        if chosen:
            await asyncio.gather(*(self._deliver(message) for message in chosen))
        return len(chosen)

    async def _deliver(self, message: Outgoing) -> None:
        self._in_flight.add(message.conversation)
        try:
            if not await asyncio.to_thread(self.records.lease, message.id):
                return
            try:
                outcome = await self.send(message)
            except Exception as failure:  # noqa: BLE001 - an unexpected error is retried
                logger.error("%s message not sent: %s", self.channel, type(failure).__name__)
                logger.debug("%s send failure", self.channel, exc_info=True)
                outcome = Outcome(Verdict.RETRY, backoff(message.attempts))
            await self._apply(message, outcome)
        finally:
            self._in_flight.discard(message.conversation)

    async def _apply(self, message: Outgoing, outcome: Outcome) -> None:
        if outcome.verdict is Verdict.SENT:
            await asyncio.to_thread(self.records.mark_sent, message.id)
            self._not_before[message.conversation] = asyncio.get_running_loop().time() + self.pace_s
            self._wake.set()  # the person's next message may be due already
        elif outcome.verdict is Verdict.RETRY:
            logger.warning("%s message not sent (%s): again in %.0f s",
                           self.channel, outcome.reason or "transient", outcome.delay_s)
            await asyncio.to_thread(self.records.retry, message.id, outcome.delay_s)
        elif outcome.verdict is Verdict.HOLD:
            held = await asyncio.to_thread(self.records.hold, message.conversation)
            logger.info("%d %s message(s) held until the person writes", held, self.channel)
        else:
            logger.error("%s refused a message for good (%s): dropped",
                         self.channel, outcome.reason or "refused")
            await asyncio.to_thread(self.records.drop, message.id)
        if len(self._not_before) > 10_000:
            now = asyncio.get_running_loop().time()
            self._not_before = {k: v for k, v in self._not_before.items() if v > now}
