"""New tickets, and tickets that became urgent, announced in the counsellors' Telegram
group, when one is configured.

The announcement names the ticket's number, urgency, language and channel only: no
message text and nothing that identifies the person. Set TELEGRAM_BOT_TOKEN and
DESK_TELEGRAM_CHAT_ID; TELEGRAM_API_BASE_URL points tests at a local fake.
"""

import asyncio
import logging
from typing import Any, Dict, Optional, Set

from telegram import Bot
from telegram.error import TelegramError

from avrr.settings import DeskSettings

logger = logging.getLogger(__name__)


def announcement(ticket: Dict[str, Any], now_urgent: bool = False) -> str:
    """`now_urgent`: during the handoff, the person wrote about danger."""
    what = (f"Ticket #{ticket['id']} is now urgent:" if now_urgent
            else f"New ticket #{ticket['id']}: {ticket['urgency']},")
    return (f"{what} language {ticket['language']}, via {ticket['channel']}. "
            "Open the desk console to answer.")


class Announcer:
    def __init__(self, settings: DeskSettings) -> None:
        self.settings = settings
        self._bot: Optional[Bot] = None
        self._tasks: Set[asyncio.Task] = set()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.telegram_bot_token and self.settings.telegram_chat_id)

    def announce(self, ticket: Dict[str, Any], now_urgent: bool = False) -> None:
        """Send in the background: a slow Telegram never delays the person's ticket."""
        if self.enabled:
            task = asyncio.create_task(
                self._send(announcement(ticket, now_urgent), ticket["id"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, text: str, ticket_id: int) -> None:
        try:
            if self._bot is None:
                self._bot = Bot(
                    self.settings.telegram_bot_token.get_secret_value(),
                    base_url=f"{self.settings.telegram_api_base_url}/bot",
                    base_file_url=f"{self.settings.telegram_api_base_url}/file/bot",
                )
                await self._bot.initialize()
            await self._bot.send_message(chat_id=self.settings.telegram_chat_id, text=text)
        except (TelegramError, OSError) as failure:
            logger.error(
                "ticket %d not announced on Telegram: %s", ticket_id, type(failure).__name__
            )

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._bot is not None:
            await self._bot.shutdown()
