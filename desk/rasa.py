"""The desk's client of Rasa's HTTP API: counsellor replies and the hand-back."""

import urllib.parse
from typing import Any, Dict, Optional

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=10)
HANDBACK_ACTION = "action_handoff_end"


class DeliveryError(RuntimeError):
    """Rasa did not take the message; the desk keeps it and tries again."""


class Rasa:
    def __init__(self, url: str, token: Optional[str]) -> None:
        self.url = url
        self.token = token
        self._session: Optional[aiohttp.ClientSession] = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(
        self, conversation_id: str, path: str, params: Dict[str, str], body: Any
    ) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        if self.token:
            params = dict(params, token=self.token)
        url = f"{self.url}/conversations/{urllib.parse.quote(conversation_id, safe='')}/{path}"
        try:
            async with self._session.post(url, params=params, json=body) as reply:
                if reply.status >= 300:
                    raise DeliveryError(f"Rasa answered {reply.status}")
        except (aiohttp.ClientError, OSError, TimeoutError) as failure:
            raise DeliveryError(type(failure).__name__) from failure

    async def say(self, conversation_id: str, text: str) -> None:
        """Send a counsellor's text to the person, in the channel they last used.

        Appending a `bot` event keeps the whole conversation in the tracker; with
        execute_side_effects Rasa also sends it through the channel.
        """
        await self._post(
            conversation_id,
            "tracker/events",
            {"output_channel": "latest", "execute_side_effects": "true"},
            {"event": "bot", "text": text, "metadata": {"counsellor": True}},
        )

    async def hand_back(self, conversation_id: str) -> None:
        """Give the conversation back to the assistant, which tells the person."""
        await self._post(
            conversation_id,
            "execute",
            {"output_channel": "latest"},
            {"name": HANDBACK_ACTION},
        )
