"""`python -m bot.serve run ...`: Rasa's command line, with three of its flaws mended.

1. Rasa wraps every tracker store in a FailSafeTrackerStore: when the database fails,
   it logs, keeps the conversation in memory and answers as if all were well, so what
   the person wrote is lost at the next restart. It also falls back to memory when a
   custom store cannot be imported. Here the configured store is used as it is, an
   in-memory one is refused, and a storage error fails the request (the channel
   answers 503, and the client can send again).
2. Rasa checks each action server response with `jsonschema.validate`, which first
   validates the schema itself against its meta-schema, on every call: measured here
   (py-spy, bench/load.py) at 45% of the server's CPU. The same check runs with a
   validator built once.
3. LogisticRegressionClassifier computes `X @ coef.T` with X sparse: scipy copies the
   transposed coefficients (29 x 270,000 here) to make them contiguous, for every
   message: 23 ms of a 38 ms message. Stored in Fortran order after loading, the
   transposed matrix is contiguous already (0.06 ms), with the same results.
"""
import logging
from functools import lru_cache
from typing import Any, Dict, Optional

import numpy as np
from rasa.core.actions.action import RemoteAction
from rasa.core.agent import Agent
from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
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


@lru_cache(maxsize=1)
def action_result_validator() -> Any:
    from jsonschema.validators import validator_for

    schema = RemoteAction.action_response_format_spec()
    validator = validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def validate_action_result(self: RemoteAction, result: Dict[str, Any]) -> bool:
    """RemoteAction._validate_action_result, with the validator built once."""
    from jsonschema import ValidationError

    try:
        action_result_validator().validate(result)
    except ValidationError as invalid:
        invalid.message += (
            ". Failed to validate Action server response from API, make sure your "
            "response from the Action endpoint is valid."
        )
        raise
    return True


_load_logistic_regression = LogisticRegressionClassifier.load.__func__


def load_logistic_regression(cls: type, *args: Any, **kwargs: Any) -> Any:
    """LogisticRegressionClassifier.load, with the coefficients in Fortran order."""
    component = _load_logistic_regression(cls, *args, **kwargs)
    component.clf.coef_ = np.asfortranarray(component.clf.coef_)
    return component


def mend_rasa() -> None:
    Agent._create_tracker_store = staticmethod(durable_tracker_store)
    RemoteAction._validate_action_result = validate_action_result
    LogisticRegressionClassifier.load = classmethod(load_logistic_regression)


def main() -> None:
    mend_rasa()
    # httpx (python-telegram-bot's client) logs each request's URL, which holds the bot
    # token, at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
