import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot.serve import validate_action_result


def test_action_results_are_checked_as_rasa_checks_them():
    action = RemoteAction.__new__(RemoteAction)
    valid = {
        "events": [{"event": "slot", "name": "language", "value": "fa"}],
        "responses": [{"text": "hi", "buttons": []}],
    }
    assert validate_action_result(action, valid) is True
    assert RemoteAction._validate_action_result(action, valid) is True

    invalid = {"events": [{"event": "no_such_event"}], "responses": []}
    with pytest.raises(ValidationError):
        RemoteAction._validate_action_result(action, invalid)
    with pytest.raises(ValidationError, match="Failed to validate Action server response"):
        validate_action_result(action, invalid)


def test_logistic_regression_loads_with_fortran_ordered_coefficients(tmp_path):
    import numpy as np
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.nlu.classifiers.logistic_regression_classifier import (
        LogisticRegressionClassifier,
    )
    from sklearn.linear_model import LogisticRegression

    from bot.serve import load_logistic_regression

    storage = LocalModelStorage(tmp_path)
    resource = Resource("lr")
    context = ExecutionContext(graph_schema=None, model_id="m")
    trained = LogisticRegressionClassifier.create({}, storage, resource, context)
    trained.clf = LogisticRegression().fit(np.eye(3), ["a", "b", "c"])
    trained.persist()

    loaded = load_logistic_regression(
        LogisticRegressionClassifier, {}, storage, resource, context
    )

    assert loaded.clf.coef_.flags["F_CONTIGUOUS"]
    assert np.array_equal(loaded.clf.coef_, trained.clf.coef_)


def test_a_reply_not_confirmed_yet_is_a_503_to_retry_and_other_failures_stay_500(
    monkeypatch,
):
    """As `mend_rasa` sets it (tests/e2e/test_telegram.py sees it through Rasa's API)."""
    from rasa.server import ErrorResponse

    from bot.channels.base import NotYetSent
    from bot.serve import retryable_error

    monkeypatch.setattr(ErrorResponse, "__init__", retryable_error)
    try:
        raise NotYetSent("telegram message queued, not yet sent")
    except NotYetSent:
        waiting = ErrorResponse(500, "ConversationError", "An unexpected error")
    assert (waiting.status, waiting.error_info["reason"]) == (503, "NotYetSent")
    try:
        raise ValueError("something else")
    except ValueError:
        broken = ErrorResponse(500, "ConversationError", "An unexpected error")
    assert (broken.status, broken.error_info["reason"]) == (500, "ConversationError")
