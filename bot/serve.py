"""`python -m bot.serve run ...`: Rasa's command line, minus a silent failure.

Rasa wraps every tracker store in a FailSafeTrackerStore: when the database fails, it
logs, keeps the conversation in memory and answers as if all were well, so what the
person wrote is lost at the next restart. It also falls back to memory when a custom
store cannot be imported. Here the configured store is used as it is, an in-memory one
is refused, and a storage error fails the request (the channel answers 503, and the
client can send again).
"""
from typing import Optional

from rasa.core.agent import Agent
from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain


class TrackerStoreUnavailable(RuntimeError):
    """No durable tracker store is configured."""


def durable_tracker_store(store: Optional[TrackerStore], domain: Domain) -> TrackerStore:
    """The configured store, unwrapped; refuse to run without one."""
    if store is None or isinstance(store, InMemoryTrackerStore):
        raise TrackerStoreUnavailable(
            "no durable tracker store: check tracker_store in endpoints.yml"
        )
    store.domain = domain
    return store


def main() -> None:
    Agent._create_tracker_store = staticmethod(durable_tracker_store)
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
