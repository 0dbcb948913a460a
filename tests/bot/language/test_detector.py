import pytest

from bot.language.detector import (
    Detection,
    LanguageDetector,
    NgramModel,
    decisive_language,
    hint_in,
    script_of,
    words_of,
)

EXAMPLES = [
    ("en", "hello how are you, i want to go home"),
    ("en", "is the return free of charge"),
    ("fr", "bonjour je veux rentrer chez moi"),
    ("fr", "est-ce que le retour est gratuit"),
    ("fa", "سلام من می خواهم به خانه برگردم"),
    ("fa", "آیا بازگشت رایگان است"),
    ("ar", "مرحبا أريد العودة إلى بلدي"),
    ("ar", "هل العودة مجانية"),
    ("ru", "привет я хочу домой"),
    ("uk", "привіт я хочу додому"),
    ("fa-Latn", "salam man mikham bargardam khane"),
    ("fa-Latn", "barname bazgasht raygan ast"),
]


@pytest.fixture(scope="module")
def detector():
    return LanguageDetector(NgramModel.train(EXAMPLES))


@pytest.mark.parametrize(
    "text, language",
    [
        ("زه غواړم کور ته لاړ شم", "ps"),  # ړ and ښ are Pashto's own
        ("مجھے واپس جانا ہے، کیا یہ مفت ہے؟", "ur"),
        ("я хочу їхати додому", "uk"),
        ("это бесплатно? мы хотим домой", "ru"),
        ("tôi muốn về nhà", "vi"),
        ("őszintén szeretnék hazamenni", "hu"),
        ("eve dönmek istiyorum, başvuru ücretsiz mi?", "tr"),
        ("dua të kthehem në shtëpi", "sq"),
    ],
)
def test_a_language_s_own_letters_decide(detector, text, language):
    assert detector.detect(text) == Detection(language, 1.0, "letters")


def test_longer_messages_are_decided_by_the_ngram_model(detector):
    assert detector.detect("je veux rentrer chez moi, est-ce gratuit").language == "fr"
    assert detector.detect("من می خواهم به خانه برگردم").language == "fa"
    assert detector.detect("i want to go home is it free").language == "en"


def test_romanized_persian_is_persian_and_says_so(detector):
    found = detector.detect("salam man mikham bargardam, raygan ast?")
    assert (found.language, found.romanized) == ("fa", True)


@pytest.mark.parametrize("text", ["ok", "OK!", "yes", "salam", "1", "😀😀", "?!", "   ", "a"])
def test_what_cannot_be_told_keeps_the_conversation_s_language(detector, text):
    assert detector.detect(text).language is None


def test_a_channel_hint_decides_a_short_unclear_message_its_script_allows(detector):
    unclear = "zzq qxv"
    assert detector.detect(unclear).language is None
    assert detector.detect(unclear, hint="fr-FR") == Detection(
        "fr", detector.detect(unclear).confidence, "channel hint"
    )
    assert detector.detect(unclear, hint="ru").language == "ru"  # romanized Russian
    assert detector.detect("ثث ذذ", hint="fr").language != "fr"  # French is not in Arabic script
    assert detector.detect(unclear, hint="de").language is None
    # Words of every language keep the conversation's language, whatever the hint.
    assert detector.detect("ok", hint="fr").language is None


def test_langdetect_is_averaged_in_over_the_languages_it_knows():
    calls = []

    def fake_langdetect(text):
        calls.append(text)
        return {"fr": 1.0}

    detector = LanguageDetector(NgramModel.train(EXAMPLES), fake_langdetect)
    found = detector.detect("hello bonjour hello bonjour hello")

    assert calls == ["hello bonjour hello bonjour hello"]
    assert found.language == "fr"


def test_helpers():
    assert words_of("Hello, WORLD! 42 l’eau 3arabi") == ["hello", "world", "42", "l’eau", "3arabi"]
    assert script_of(words_of("سلام hi")) == "arabic"
    assert script_of([]) is None
    assert decisive_language(words_of("ї and ы")) is None  # two languages' letters: undecided
    assert hint_in("fa_IR", ("ar", "fa")) == "fa"
    assert hint_in("fa", ("en", "fa-Latn")) == "fa"
    assert hint_in(None, ("en",)) is None
