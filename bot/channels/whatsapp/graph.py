"""The Graph API client: sends one message from our phone number, once.

Retrying is the deliverer's (bot.channels.delivery): a GraphError says whether the same
message may go through later (`transient`), and how long Meta asked to wait.
"""
import asyncio
import logging
from typing import Any, Dict, Mapping, Optional

import aiohttp

from avrr.settings import WhatsAppSettings
from bot.channels.whatsapp.render import GraphMessage

logger = logging.getLogger(__name__)

# Graph API error codes with a meaning here.
REENGAGEMENT_REQUIRED = 131047  # free-form message outside the 24-hour window
TEMPLATE_TRANSLATION_MISSING = 132001
TEMPLATE_ERRORS = (132000, 133000)  # Meta's codes of a template's own problems
# Meta's rate limits, told by code and often with an HTTP 400: the app's API calls (4),
# the business account's (80007), the phone number's throughput (130429), and messages
# to one person (131056, about one every 6 s). The same message goes through later.
RATE_LIMITED = frozenset({4, 80007, 130429, 131056})


class GraphError(Exception):
    """The Graph API did not take a message."""

    def __init__(self, status: Optional[int], code: Optional[int] = None,
                 retry_after_s: Optional[float] = None) -> None:
        super().__init__(f"Graph API answered {status}, error code {code}")
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s

    @property
    def transient(self) -> bool:
        """Whether the same message may go through later (rate limit, outage, network)."""
        return (self.status is None or self.status == 429 or self.status >= 500
                or self.code in RATE_LIMITED)

    @property
    def configuration(self) -> bool:
        """Whether our token or phone number id is refused: an operator must mend it."""
        return self.status in (401, 403)

    @property
    def template_problem(self) -> bool:
        """Whether Meta refuses the template itself (missing, paused, not approved, its
        parameters): an operator must mend it; another recipient fares no better."""
        return self.code is not None and TEMPLATE_ERRORS[0] <= self.code < TEMPLATE_ERRORS[1]


class GraphClient:
    """Sends messages from our phone number. Its HTTP session opens on first use."""

    def __init__(self, settings: WhatsAppSettings, timeout_s: float = 15.0) -> None:
        self.url = f"{settings.api_base_url}/{settings.phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {settings.access_token.get_secret_value()}"}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: Optional[aiohttp.ClientSession] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def _current_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers=self._headers)
            self._loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def send(self, to: str, message: GraphMessage) -> Dict[str, Any]:
        """POST one message to `to`: Meta's answer, or GraphError."""
        body = {"messaging_product": "whatsapp", "to": to, **message}
        try:
            async with self._current_session().post(self.url, json=body) as reply:
                answer = await _json_or_empty(reply)
                if reply.status < 300:
                    logger.debug("WhatsApp %s message sent to %s", message.get("type"), to)
                    return answer
                raise GraphError(
                    reply.status, _error_code(answer), _seconds(reply.headers.get("Retry-After"))
                )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as network:
            logger.debug("Graph API request failed: %s", type(network).__name__)
            raise GraphError(None) from network


async def _json_or_empty(reply: aiohttp.ClientResponse) -> Dict[str, Any]:
    try:
        answer = await reply.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _error_code(answer: Mapping[str, Any]) -> Optional[int]:
    """The Graph API's error code: {"error": {"code": 131047, "message": ...}}."""
    details = answer.get("error")
    code = details.get("code") if isinstance(details, dict) else None
    return code if isinstance(code, int) else None


def _seconds(value: Optional[str]) -> Optional[float]:
    try:
        return float(value) if value else None
    except ValueError:
        return None
