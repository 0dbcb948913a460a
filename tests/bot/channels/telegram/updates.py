"""Updates as Telegram sends them (ids and file ids changed), for the channel's tests."""
import copy

from telegram import Update

TOKEN = "123456:TEST-TOKEN"
SECRET = "telegram-test-secret"
CHAT_ID = 5550001
LANGUAGE_MENU_FR = '/change_language{"language":"fr"}'

# Updates as Telegram sends them (ids and file ids changed).
TEXT_UPDATE = {
    "update_id": 731245001,
    "message": {
        "message_id": 12,
        "from": {"id": CHAT_ID, "is_bot": False, "first_name": "Amina", "language_code": "en"},
        "chat": {"id": CHAT_ID, "first_name": "Amina", "type": "private"},
        "date": 1700000000,
        "text": "Hello",
    },
}
START_UPDATE = {
    "update_id": 731245002,
    "message": {
        "message_id": 1,
        "from": {"id": CHAT_ID, "is_bot": False, "first_name": "Amina", "language_code": "ar"},
        "chat": {"id": CHAT_ID, "first_name": "Amina", "type": "private"},
        "date": 1700000000,
        "text": "/start",
        "entities": [{"offset": 0, "length": 6, "type": "bot_command"}],
    },
}
MEDIA = {
    "sticker": {
        "sticker": {
            "width": 512, "height": 512, "emoji": "\U0001F44D", "set_name": "HotCherry",
            "is_animated": False, "is_video": False, "type": "regular",
            "thumbnail": {"file_id": "AAMCAgADGQEAAgFj", "file_unique_id": "AQADYQADr8ZRGnI",
                          "file_size": 5416, "width": 128, "height": 128},
            "file_id": "CAACAgIAAxkBAAIBY2VhZ", "file_unique_id": "AgADYQADr8ZRGg",
            "file_size": 22000,
        }
    },
    "photo": {
        "photo": [
            {"file_id": "AgACAgQAAxkBAAIBZGVh1", "file_unique_id": "AQADq7ExG1",
             "file_size": 1260, "width": 90, "height": 67},
            {"file_id": "AgACAgQAAxkBAAIBZGVh2", "file_unique_id": "AQADq7ExG2",
             "file_size": 48213, "width": 1280, "height": 960},
        ],
        "caption": "my passport",
    },
    "voice": {
        "voice": {"duration": 2, "mime_type": "audio/ogg", "file_id": "AwACAgQAAxkBAAIBZWVh",
                  "file_unique_id": "AgADzxQAAm4", "file_size": 9817}
    },
    "location": {"location": {"latitude": 47.497913, "longitude": 19.040236}},
    "document": {
        "document": {"file_name": "passport.pdf", "mime_type": "application/pdf",
                     "file_id": "BQACAgQAAxkBAAIBZmVh", "file_unique_id": "AgADtQ",
                     "file_size": 48213}
    },
}
CALLBACK_UPDATE = {
    "update_id": 731245003,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9",
        "from": {"id": CHAT_ID, "is_bot": False, "first_name": "Amina", "language_code": "pt-br"},
        "message": {
            "message_id": 13,
            "from": {"id": 123456, "is_bot": True, "first_name": "AVRR", "username": "avrr_bot"},
            "chat": {"id": CHAT_ID, "first_name": "Amina", "type": "private"},
            "date": 1700000005,
            "text": "Which language?",
            "reply_markup": {"inline_keyboard": [
                [{"text": "Français", "callback_data": LANGUAGE_MENU_FR}],
            ]},
        },
        "chat_instance": "-3217863513946329911",
        "data": LANGUAGE_MENU_FR,
    },
}


def media_update(kind: str, update_id: int = 731245010) -> dict:
    update = copy.deepcopy(TEXT_UPDATE)
    update["update_id"] = update_id
    del update["message"]["text"]
    update["message"].update(MEDIA[kind])
    return update


def text_update(text: str, update_id: int = 731245020) -> dict:
    update = copy.deepcopy(TEXT_UPDATE)
    update["update_id"] = update_id
    update["message"]["text"] = text
    return update


def parsed(data: dict) -> Update:
    return Update.de_json(copy.deepcopy(data), None)
