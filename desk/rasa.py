"""The desk's client of Rasa's HTTP API: counsellor replies and the hand-back.

It authenticates with a short-lived JWT signed with RASA_API_TOKEN, in the Authorization
header (the token never travels in a URL, so no log line can hold it).
"""

import asyncio
import time
from typing import Any, Dict, Optional

import aiohttp
import jwt
import yarl
from pydantic import SecretStr

from avrr.network import NO_CONVERSATION, path_segment
from avrr.vocabulary import Actions, Metadata

TIMEOUT = aiohttp.ClientTimeout(total=20)
JWT_LIFETIME_S = 300


class DeliveryError(RuntimeError):
    """Rasa did not take the message; the desk keeps it and tries again."""


class ConversationGone(DeliveryError):
    """The person deleted their conversation: the message can never be delivered."""


class Undeliverable(DeliveryError):
    """The platform refused the message for good (the person blocked the assistant, say)."""


async def _names_no_conversation(reply: aiohttp.ClientResponse) -> bool:
    """Whether a 404 is the Rasa server's own for a conversation it does not have. Any
    other 404 (a wrong RASA_URL, a proxy's page) is a fault to retry: taken for a deletion,
    it marked every reply undeliverable and every hand-back done."""
    try:
        return await reply.json(content_type=None) == NO_CONVERSATION
    except ValueError:
        return False


class Rasa:
    def __init__(self, url: str, token: Optional[SecretStr]) -> None:
        self.url = url
        self.token = token
        self._session: Optional[aiohttp.ClientSession] = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self) -> Dict[str, str]:
        if self.token is None:
            return {}
        claims = {"user": {"username": "desk", "role": "admin"},
                  "exp": int(time.time()) + JWT_LIFETIME_S}
        signed = jwt.encode(claims, self.token.get_secret_value(), algorithm="HS256")
        return {"Authorization": f"Bearer {signed}"}

    async def _post(
        self, conversation_id: str, path: str, params: Dict[str, str], body: Any
    ) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        # As Rasa's route reads it (avrr.network.path_segment); yarl would re-encode a "+".
        url = yarl.URL(f"{self.url}/conversations/{path_segment(conversation_id)}/{path}",
                       encoded=True).with_query(params)
        try:
            async with self._session.post(url, json=body, headers=self._headers()) as reply:
                if reply.status == 404 and await _names_no_conversation(reply):
                    raise ConversationGone("the conversation no longer exists")
                if reply.status == 410:
                    raise Undeliverable("the platform refused it for good")
                if reply.status >= 300:
                    raise DeliveryError(f"Rasa answered {reply.status}")
        # On Python 3.10 a timed-out request raises asyncio.TimeoutError, not the
        # built-in TimeoutError (they are one class from 3.11 on).
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as failure:
            raise DeliveryError(type(failure).__name__) from failure

    async def say(self, conversation_id: str, text: str, key: str) -> None:
        """Send a counsellor's text to the person, in the channel they last used.

        Appending a `bot` event keeps the whole conversation in the tracker; with
        execute_side_effects Rasa also sends it through the channel, which confirms it
        (Rasa answers 200) only once the platform has it. `key` makes a retry the same
        message: the channel sends it once.
        """
        await self._post(
            conversation_id,
            "tracker/events",
            {"output_channel": "latest", "execute_side_effects": "true"},
            {"event": "bot", "text": text,
             "metadata": {Metadata.COUNSELLOR: True, "reply_key": key}},
        )

    async def hand_back(self, conversation_id: str) -> None:
        """Give the conversation back to the assistant, which tells the person."""
        await self._post(
            conversation_id,
            "execute",
            {"output_channel": "latest"},
            {"name": Actions.HANDOFF_END},
        )
