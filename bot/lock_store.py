"""Rasa's Redis lock store, with each change of a lock one atomic step on Redis.

Rasa 3.6's RedisLockStore changes a conversation's lock by reading it, changing it in the
replica's memory and writing it back (RasaHQ/rasa#11256). Two replicas doing so at once
each write over the other's change: both are given the same ticket, or one ticket is
lost, or a lock is deleted just after another replica queued a ticket in it; then two
messages of one conversation are processed at once, or one waits until it fails. Here
every change (issue a ticket, drop expired tickets, finish a ticket, clean up) is one
Lua script run by Redis, which runs nothing else meanwhile.

Everything else is Rasa's: the key (`lock:<conversation id>`), its JSON (a TicketLock, so
stock replicas read it), the waiting loop of `LockStore.lock`, and the lifetime: a
ticket expires LOCK_LIFETIME seconds after it was issued (TICKET_LOCK_LIFETIME), or a
lifetime after the ticket before it when it was queued (Rasa's own store lets such a
waiter expire unserved and hang), so the conversation of a replica that died holding it
goes on after that. Expiry is judged on
the calling replica's clock, as Rasa's TicketLock judges it when reading a lock: keep the
replicas' clocks synchronised.

Beyond Rasa's: a ticket number is never given twice (a turn that outlived its ticket
gives back its own, not the next holder's); Redis forgets a lock a minute after its last
ticket expires (its key names the conversation); and a ticket that cannot be given back
after the turn is stored fails nothing (the message would be handled again): it expires.
"""
import json
import logging
import time
from typing import Any, Dict

import redis
from rasa.core.lock_store import (
    DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX,
    DEFAULT_SOCKET_TIMEOUT_IN_SECONDS,
    LOCK_LIFETIME,
    InMemoryLockStore,
    LockError,
    LockStore,
    RedisLockStore,
)
from rasa.shared.exceptions import ConnectionException

from avrr.settings import RasaSettings, redacted

logger = logging.getLogger(__name__)

# KEYS[1]: the lock. ARGV[1]: the conversation id as JSON, ARGV[2]: the caller's time.
# A ticket is kept as Rasa keeps it, a JSON text inside the lock's JSON, and written back
# unchanged; the lock is written as TicketLock.dumps writes it.
_TICKETS = """
local now = tonumber(ARGV[2])

local function live_tickets(stored)
    local kept = {}
    if stored then
        for _, text in ipairs(cjson.decode(stored)["tickets"] or {}) do
            local ticket = cjson.decode(text)
            if not (now > ticket["expires"]) then
                table.insert(kept, {number = ticket["number"], expires = ticket["expires"],
                                    text = text})
            end
        end
    end
    return kept
end

local function without(tickets, number)
    local kept = {}
    for _, ticket in ipairs(tickets) do
        if ticket.number ~= number then table.insert(kept, ticket) end
    end
    return kept
end

-- The lock is kept until its last ticket expires, and a minute more (a lock with no
-- ticket is a free one): then Redis forgets it, and the conversation id in its key.
local function save(tickets)
    local texts = {}
    local keep_ms = 60000
    for i, ticket in ipairs(tickets) do
        texts[i] = cjson.encode(ticket.text)
        keep_ms = math.max(keep_ms, math.ceil((ticket.expires - now) * 1000) + 60000)
    end
    redis.call("SET", KEYS[1], '{"conversation_id": ' .. ARGV[1] .. ', "tickets": ['
        .. table.concat(texts, ", ") .. ']}', "PX", keep_ms)
end

local stored = redis.call("GET", KEYS[1])
"""

# ARGV[3]: the new ticket's expiry as JSON, ARGV[4]: its lifetime. Its number follows the
# last live ticket's; in a free lock, it is Redis's clock in milliseconds (and above any
# number still stored). Numbers are never given again: a turn that outlived its ticket
# (Rasa lets the next message in then) finishes its own number, not the next holder's,
# and leaves that holder's lock in place. A ticket queued behind others lives at least a
# lifetime beyond the last of them: else a waiter queued just after a holder that died
# would expire with it, unserved, and wait for a lock nobody frees.
_ISSUE = _TICKETS + """
local tickets = live_tickets(stored)
local expires = ARGV[3]
local number
if #tickets > 0 then
    local last = tickets[#tickets]
    number = last.number + 1
    local queued = last.expires + tonumber(ARGV[4])
    -- %.14g as Lua prints numbers: a tenth of a millisecond, and the text Python's
    -- json.dumps gives back for the same number, so the lock stays Rasa's byte for byte.
    if queued > tonumber(ARGV[3]) then expires = string.format("%.14g", queued) end
else
    local clock = redis.call("TIME")
    number = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
    if stored then
        for _, text in ipairs(cjson.decode(stored)["tickets"] or {}) do
            number = math.max(number, cjson.decode(text)["number"] + 1)
        end
    end
end
table.insert(tickets, {number = number, expires = tonumber(expires),
    text = string.format('{"number": %d, "expires": %s}', number, expires)})
save(tickets)
return number
"""

_DROP_EXPIRED = _TICKETS + """
if stored then save(live_tickets(stored)) end
"""

# ARGV[3]: the ticket's number.
_FINISH = _TICKETS + """
if stored then save(without(live_tickets(stored), tonumber(ARGV[3]))) end
"""

# As _FINISH, and the lock deleted when nobody else holds a ticket; 1 if it was.
_CLEANUP = _TICKETS + """
if not stored then return 0 end
local tickets = without(live_tickets(stored), tonumber(ARGV[3]))
if #tickets > 0 then
    save(tickets)
    return 0
end
redis.call("DEL", KEYS[1])
return 1
"""


class AtomicRedisLockStore(RedisLockStore):
    """RedisLockStore whose changes of a lock cannot interleave (see the module docstring)."""

    def __init__(self, url: str, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_IN_SECONDS) -> None:
        # Rasa's __init__ only makes the client, from a host and port: ours is from a URL.
        self.red = redis.Redis.from_url(url, socket_timeout=socket_timeout)
        self.key_prefix = DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX
        self._issue = self.red.register_script(_ISSUE)
        self._drop_expired = self.red.register_script(_DROP_EXPIRED)
        self._finish = self.red.register_script(_FINISH)
        self._cleanup = self.red.register_script(_CLEANUP)

    def _args(self, conversation_id: str, *more: Any) -> Dict[str, Any]:
        return {
            "keys": [self.key_prefix + conversation_id],
            "args": [json.dumps(conversation_id), repr(time.time()), *more],
        }

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        logger.debug("Issuing ticket for conversation '%s'.", conversation_id)
        try:
            expires = json.dumps(time.time() + lock_lifetime)
            return int(self._issue(**self._args(conversation_id, expires, repr(lock_lifetime))))
        except Exception as e:  # noqa: BLE001 - Rasa's contract: any failure is a LockError
            raise LockError(f"Error while acquiring lock. Error:\n{e}") from e

    def update_lock(self, conversation_id: str) -> None:
        self._drop_expired(**self._args(conversation_id))

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        try:
            self._finish(**self._args(conversation_id, int(ticket_number)))
        except UNREACHABLE as failure:
            _not_returned(failure)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        try:
            deleted = self._cleanup(**self._args(conversation_id, int(ticket_number)))
        except UNREACHABLE as failure:
            _not_returned(failure)
            return
        if deleted:
            self._log_deletion(conversation_id, deletion_successful=True)


# Redis not answering: what a finished turn may shrug off. An error of the script itself
# (a ResponseError) is ours to see, not to wait out.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


def _not_returned(failure: redis.RedisError) -> None:
    """Rasa gives a ticket back once the turn is done and stored: were the failure to
    reach the channel, the message would be handled again (a second handoff, say). The
    ticket expires on its own; the next message of the conversation waits for it."""
    logger.warning("lock store: a finished turn's ticket could not be given back (%s); "
                   "it expires on its own", type(failure).__name__)


def from_settings(settings: RasaSettings) -> LockStore:
    """The Rasa server's lock store: on Redis when AVRR_REDIS_URL is set, else in memory."""
    if not settings.redis_lock_store:
        logger.info("lock store: in memory (this process only)")
        return InMemoryLockStore()
    url = settings.redis_url.get_secret_value()
    store = AtomicRedisLockStore(url)
    try:
        store.red.ping()
    except redis.RedisError as failure:
        raise ConnectionException(
            f"the lock store's Redis at {redacted(url)} does not answer "
            f"({type(failure).__name__})"
        ) from None
    logger.info("lock store: Redis at %s", redacted(url))
    return store

