"""The danger lexicon: normalised matching of words and phrases, in every script."""
import pytest

from bot.safety.lexicon import Lexicon, normalise

LEXICON = Lexicon({
    "report_emergency": ["beating me", "in danger now", "kill*"],
    "report_suicidal_thoughts": ["kill myself"],
    "report_exploitation": ["forced to work", "работаю бесплатно"],
    "express_fear_of_return": ["مرا میکشند", "öldürürler"],
})


@pytest.mark.parametrize(
    "text, folded",
    [
        ("Élève  ÇA!", "eleve ca"),
        ("Đi ngay, tôi sợ", "di ngay toi so"),
        ("ÖLDÜRÜRLER", "oldururler"),
        ("İstanbul'da ışık", "istanbul da isik"),
        ("مـرا   مي‌كشند", "مرا میکشند"),  # tatweel, Arabic yeh and kaf, zero-width non-joiner
        ("أنا في خطرٍ", "انا فی خطر"),  # hamza seats and harakat
        ("Всё ещё", "все еще"),
        ("мене бʼють", "мене б ють"),  # U+02BC, as ' and ’ are read
        ("мене б’ють", "мене б ють"),
    ],
)
def test_text_is_folded_as_people_type_it(text, folded):
    assert normalise(text) == folded


@pytest.mark.parametrize(
    "text, intent",
    [
        ("my husband is BEATING me!!", "report_emergency"),
        ("i am in danger now please", "report_emergency"),
        ("they want to killing him", "report_emergency"),  # kill* is a prefix
        ("I want to kill myself", "report_suicidal_thoughts"),  # the more specific wins
        ("I am forced to work", "report_exploitation"),
        ("я работаю бесплатно", "report_exploitation"),
        ("اگر برگردم مرا مي کشند", "express_fear_of_return"),  # written apart
        ("Geri dönersem öl dürürler", "express_fear_of_return"),
        ("Geri dönersem öldururler", "express_fear_of_return"),
    ],
)
def test_a_phrase_matches_whole_words_in_order(text, intent):
    assert LEXICON.match(text).intent == intent


@pytest.mark.parametrize(
    "text", ["beating", "me beating", "forced to walk", "skill", "in danger", "", "!!!"],
)
def test_partial_or_reordered_words_do_not_match(text):
    assert LEXICON.match(text) is None


def test_only_safety_intents_may_have_phrases():
    with pytest.raises(ValueError, match="ask_cost"):
        Lexicon({"ask_cost": ["money"]})


@pytest.mark.parametrize(
    "phrase, text, matches",
    [
        ("kill mys*", "they kill myself", True),
        ("kill mys*", "i will killmyself", True),  # written together
        ("kill mys*", "they kill my son", False),  # the stem runs into the next word
        ("helpp*", "helppp me", True),
        ("helpp*", "help please", False),
        ("tortur*", "they torturrrrrrrrrrrrrrrrred him", True),  # longer than any phrase
    ],
)
def test_a_stem_ending_in_a_star_stays_inside_one_word(phrase, text, matches):
    found = Lexicon({"report_emergency": [phrase]}).match(text)

    assert (found is not None) == matches


ARABIC = Lexicon({
    "report_emergency": ["ضربني", "سكين", "يهددني"],
    "report_exploitation": ["جواز سفري"],
    "report_suicidal_thoughts": ["لد"],  # two letters: never a stem left by a prefix
})


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("وضربني زوجي امس", "ضربني"),  # "and he hit me"
        ("فضربني", "ضربني"),  # "so he hit me"
        ("هددني بالسكين", "سكين"),  # "with the knife"
        ("معه سكين", "سكين"),  # no prefix
        ("وبيهددني كل يوم", "يهددني"),  # "and he threatens me", Levantine b- imperfect
        ("أخذ جواز سفري", "جواز سفري"),
    ],
)
def test_arabic_prefixes_written_with_the_word_still_match(text, phrase):
    assert ARABIC.match(text).phrase == phrase


@pytest.mark.parametrize("text", ["ولد صغير", "بلد", "فلوس", "السفر"])
def test_a_prefix_is_taken_off_only_when_three_letters_remain(text):
    assert ARABIC.match(text) is None


@pytest.mark.parametrize(
    "text, intent",
    [
        ("I want to kiiiill myselffff", "report_suicidal_thoughts"),  # read once
        ("he is beatinggg meee", "report_emergency"),
        ("forced to worrrk", "report_exploitation"),
        ("я работаю бесплатнооо", "report_exploitation"),
    ],
)
def test_a_letter_typed_again_and_again_for_emphasis_still_matches(text, intent):
    assert LEXICON.match(text).intent == intent


def test_a_double_letter_typed_again_and_again_is_read_twice_too():
    lexicon = Lexicon({"report_emergency": ["kill"]})

    assert lexicon.match("they will killlll me").phrase == "kill"
    assert lexicon.match("they will kil me") is None  # only emphasis is undone


def test_a_number_between_the_words_of_a_phrase_does_not_break_it():
    lexicon = Lexicon({"report_suicidal_thoughts": ["swallowed pills", "проглотил* таблеток"]})

    assert lexicon.match("I swallowed 30 pills").phrase == "swallowed pills"
    assert lexicon.match("я проглотил 30 таблеток").phrase == "проглотил* таблеток"
    assert lexicon.match("I swallowed two pills") is None  # only numbers are skipped
