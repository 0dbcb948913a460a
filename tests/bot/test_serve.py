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
