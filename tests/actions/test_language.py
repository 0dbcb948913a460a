from rasa_sdk.events import SlotSet

from actions.language import ActionChooseLanguage
from tests.conftest import make_tracker, sent

NAMES = {
    "ar": "العربية", "en": "English", "fa": "فارسی", "fr": "Français", "hu": "Magyar",
    "ps": "پښتو", "ru": "Русский", "sq": "Shqip", "tr": "Türkçe", "uk": "Українська",
    "ur": "اردو", "vi": "Tiếng Việt",
}
MENU = [
    {"title": name, "payload": f'/change_language{{"language":"{code}"}}'}
    for code, name in NAMES.items()
]


async def test_asking_for_a_language_shows_the_menu_in_each_language_s_own_name(dispatcher):
    events = await ActionChooseLanguage().run(dispatcher, make_tracker("change_language"), {})

    assert events == []
    assert sent(dispatcher) == [("Which language would you like? I can answer in:", MENU)]


async def test_picking_a_language_confirms_in_that_language(dispatcher):
    tracker = make_tracker(
        "change_language", entities=[{"entity": "language", "value": "en"}]
    )

    assert await ActionChooseLanguage().run(dispatcher, tracker, {}) == []
    assert sent(dispatcher)[0][0] == "OK, I will answer in English. What would you like to know?"


async def test_a_language_without_content_is_refused(dispatcher):
    tracker = make_tracker(
        "change_language",
        slots={"language": "xx"},
        entities=[{"entity": "language", "value": "xx"}],
    )

    events = await ActionChooseLanguage().run(dispatcher, tracker, {})

    assert events == [SlotSet("language", "en")]
    assert sent(dispatcher) == [("Which language would you like? I can answer in:", MENU)]
