"""What the assistant says: answers per language, filled with the operator's settings.

Pure helpers with no Rasa imports, shared by the action server and the desk. Files are
reread when they change on disk, so an operator's edit of content/settings.yml or a
translator's edit of content/<lang>.yml shows in the next answer without a restart or
any training.
"""
import logging
import re
import string
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

import yaml

from avrr.logs import Once
from avrr.office import DAYS, HoursError, OfficeHours, read_office_hours
from avrr.vocabulary import DEFAULT_LANGUAGE

logger = logging.getLogger(__name__)

SETTINGS_FILE = "settings.yml"
# A language's code, as its file is named (content/fa.yml); "settings" is none.
_CODE = re.compile(r"[a-z]{2,3}")
# What answers name without condition (`requires`): a settings.yml without them is not taken.
REQUIRED_SETTINGS = ("hotline", "emergency_number")
# Left-to-right isolate: in right-to-left text, "06 80 20 50 18" would otherwise be
# shown with its groups in reverse order by the Unicode bidirectional algorithm.
LTR_ISOLATE, POP_ISOLATE = "\u2066", "\u2069"
# libyaml's loader, six times faster than the pure-Python one on our content files.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Button = Dict[str, str]


class ContentError(ValueError):
    """A content or settings file is missing something an answer needs."""


READY = "ready_replies."


@dataclass(frozen=True)
class Reply:
    """One message to the person, with its buttons, and where it comes from: part `part`
    of the answer `key`, with the placeholder values known only when answering."""

    text: str
    buttons: Tuple[Button, ...] = field(default_factory=tuple)
    key: str = ""
    part: int = 0
    values: Tuple[Tuple[str, str], ...] = ()

    def source(self) -> Dict[str, Any]:
        """What Metadata.CONTENT_KEY holds: no personal data, only content names and values
        such as a queue position."""
        return {"key": self.key, "part": self.part, "values": dict(self.values)}


def _value(entry: Any) -> Any:
    """A setting's value; `hotline: "06 80..."` written without `value:` is read as meant."""
    return entry.get("value") if isinstance(entry, dict) else entry


def _section(texts: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A section of a content file; an empty one if it is missing or not a mapping."""
    found = texts.get(name)
    return found if isinstance(found, Mapping) else {}


def _unfilled(text: str, known: Mapping[str, str]) -> List[str]:
    """The placeholders of `text` that no setting fills: the counsellor fills them."""
    return [name for name in placeholders(text) if not known.get(name)]


def _check(path: Path, data: Mapping[str, Any], english: Optional[Mapping[str, Any]],
           previous: Optional[Mapping[str, Any]] = None) -> None:
    """ContentError if a file read cannot be used: settings without a value every answer
    may need, a language file without answers, a translation unlike `english`, or an
    edit of English that lacks what its `previous` version had (`dropped`)."""
    found: List[str] = []
    if path.name == SETTINGS_FILE:
        for name in REQUIRED_SETTINGS:
            value = _value(data.get(name))
            if value is None or not str(value).strip():
                raise ContentError(f"{name} needs a value: the answers name it")
    elif not isinstance(data.get("answers"), dict) or not data["answers"]:
        raise ContentError("it holds no answers")
    elif english is not None:  # an answer English has and the edit lacks is given in English
        found = mismatches(data, english, keys=TITLES)
    elif previous is not None:
        found = dropped(data, previous)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ContentError(f"{found[0]}{more}")


def dropped(texts: Mapping[str, Any], previous: Mapping[str, Any]) -> List[str]:
    """What an edit of English lacks that its last good version had: a key of a section
    (every language falls back to English's), or an answer with no messages or a message
    without its text. English may change its texts, and add keys and messages."""
    found = []
    for section in (*SECTIONS, "topic_names"):
        found += _missing(section, _section(texts, section), _section(previous, section))
    for key, messages in _section(texts, "answers").items():
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("text"), str) for m in messages):
            found.append(f"answers.{key} needs messages, each with a text")
    return found


SECTIONS = ("topics", "choices", "days", "answers", "ready_replies")
# The titles of buttons and days: an edit without one of English's is not taken.
TITLES = ("topics", "choices", "days")


def mismatches(texts: Mapping[str, Any], english: Mapping[str, Any],
               keys: Sequence[str] = SECTIONS) -> List[str]:
    """Where a translation differs from English in what the code relies on: the keys of
    the sections `keys`, and in each answer the number of messages, their placeholders,
    buttons and conditions (`requires`); each ready reply's placeholders."""
    found = []
    for section in keys:
        theirs, ours = texts.get(section), english.get(section) or {}
        if not isinstance(theirs, dict):
            found.append(f"{section} is missing")
            continue
        found += _missing(section, theirs, ours)
        found += [f"{section}.{key} is not in English" for key in theirs if key not in ours]
    for key, messages in (english.get("answers") or {}).items():
        theirs = (texts.get("answers") or {}).get(key)
        if theirs is None:
            continue
        if not isinstance(theirs, list) or len(theirs) != len(messages):
            found.append(f"answers.{key} needs {len(messages)} messages, as in English")
            continue
        for part, (mine, other) in enumerate(zip(messages, theirs, strict=True)):
            where = f"answers.{key}[{part}]"
            if not isinstance(other, dict) or not isinstance(other.get("text"), str):
                found.append(f"{where} has no text")
                continue
            for name in ("buttons", "requires"):
                if other.get(name) != mine.get(name):
                    found.append(f"{where}: {name} differ from English")
            found += _placeholder_mismatch(where, other["text"], mine["text"])
    for key, text in (english.get("ready_replies") or {}).items():
        other = (texts.get("ready_replies") or {}).get(key)
        if other is not None:
            found += _placeholder_mismatch(f"ready_replies.{key}", str(other), text)
    return found


def _missing(section: str, theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> List[str]:
    """The keys of a section that `ours` has and `theirs` lacks, each as a finding."""
    return [f"{section}.{key} is missing" for key in ours if key not in theirs]


def _placeholder_mismatch(where: str, text: str, english: str) -> List[str]:
    try:
        if sorted(placeholders(text)) != sorted(placeholders(english)):
            return [f"{where}: its {{placeholders}} differ from English"]
    except ValueError:  # "{hotline" : a brace without its pair
        return [f"{where}: a {{ or }} without its pair"]
    return []


def read_yaml(path: Path) -> Dict[str, Any]:
    """A content or settings file; ContentError if it holds no mapping."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=SAFE_LOADER) or {}  # noqa: S506 - a safe loader
    if not isinstance(data, dict):
        raise ContentError(f"{path.name} must hold a mapping")
    return data


class Content:
    """Answers in every available language, read from one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: Dict[Path, Tuple[float, Dict[str, Any]]] = {}
        self._tell = Once(logger)  # problems of the files, logged once each
        # The office hours of one version of settings.yml, read once.
        self._hours: Optional[Tuple[Dict[str, Any], OfficeHours]] = None

    def _load(self, path: Path) -> Dict[str, Any]:
        """The file, reread when it changes on disk. An edit that cannot be taken (YAML
        that does not parse, a required setting emptied, no answers: `_check`) is not:
        the last good version stays in use, and the reason is logged once, for the operator.
        Without a good version, the error is raised."""
        cached = self._cache.get(path)
        mtime = None
        try:
            mtime = path.stat().st_mtime
            if cached is not None and cached[0] == mtime:
                return cached[1]
            data = read_yaml(path)
            # An edit is compared with English (English's with its last good version);
            # a first reading is taken.
            english = previous = None
            if cached is not None and path.name == f"{DEFAULT_LANGUAGE}.yml":
                previous = cached[1]
            elif cached is not None and path.name != SETTINGS_FILE:
                english = self._load(self.folder / f"{DEFAULT_LANGUAGE}.yml")
            _check(path, data, english, previous)
        except (OSError, yaml.YAMLError, ContentError) as error:
            if cached is None:
                raise
            self._tell(f"{path.name}: {error}; its last good version is used until it is "
                       "mended")
            if mtime is not None:  # not read again until the next edit
                self._cache[path] = (mtime, cached[1])
            return cached[1]
        self._cache[path] = (mtime, data)
        return data

    def languages(self) -> Dict[str, str]:
        """Codes of the languages with a content file, each with its own name (a new file
        that cannot be read is left out, and logged)."""
        found = {}
        for path in sorted(self.folder.glob("*.yml")):
            if path.name == SETTINGS_FILE:
                continue
            try:
                found[path.stem] = self._load(path).get("name", path.stem)
            except (OSError, yaml.YAMLError, ContentError) as error:
                self._tell(f"{path.name}: {error}; the language is left out until it is "
                           "mended")
        return found

    def language_file(self, language: str) -> Dict[str, Any]:
        """The language's content; English's for a language without a file that can be
        read (one look at one file: this runs for every title of every answer)."""
        if isinstance(language, str) and _CODE.fullmatch(language):
            path = self.folder / f"{language}.yml"
            try:
                return self._load(path)
            except FileNotFoundError:
                pass
            except (OSError, yaml.YAMLError, ContentError) as error:
                self._tell(f"{path.name}: {error}; the language is left out until it is "
                           "mended")
        return self._load(self.folder / f"{DEFAULT_LANGUAGE}.yml")

    def settings(self) -> Dict[str, Any]:
        """The operator settings as {name: value}; empty values are None."""
        raw = self._load(self.folder / SETTINGS_FILE)
        return {name: _value(entry) for name, entry in raw.items()}

    def office_hours(self) -> OfficeHours:
        """The office's opening hours and closed days. Hours that cannot be read are not
        mentioned at all (as if unset: no answer promises an opening), and the reason is
        logged once, for the operator."""
        raw = self._load(self.folder / SETTINGS_FILE)
        if self._hours is None or self._hours[0] is not raw:  # read once per version
            self._hours = (raw, self._read_hours(raw.get("office_hours")))
        return self._hours[1]

    def _read_hours(self, entry: Any) -> OfficeHours:
        try:
            return read_office_hours(entry)
        except HoursError as error:
            self._tell(f"{SETTINGS_FILE}: {error}; the office hours are not mentioned until "
                       "it is mended")
            zone = entry.get("timezone") if isinstance(entry, dict) else None
            try:
                return OfficeHours(zone=read_office_hours({"timezone": zone}).zone)
            except HoursError:
                return OfficeHours()

    def _entry(self, language: str, section: str, key: str) -> Any:
        """`section.key` of the language's file; one a translation lacks is English's,
        logged once (a title, a name, a ready reply: never an error for it). None when
        English lacks it too."""
        found = _section(self.language_file(language), section).get(key)
        if found is None and language != DEFAULT_LANGUAGE:
            found = _section(self.language_file(DEFAULT_LANGUAGE), section).get(key)
            if found is not None:
                self._tell(f"{language}.yml: {section}.{key} is missing; it is given in "
                           "English until it is mended")
        return found

    def has(self, key: str, language: str) -> bool:
        return key in _section(self.language_file(language), "answers")

    def replies(
        self,
        key: str,
        language: str,
        buttons: Sequence[Button] = (),
        values: Optional[Mapping[str, str]] = None,
    ) -> List[Reply]:
        """The messages answering `key`, with `buttons` added to the last one.

        `values` fills placeholders known only when answering, like {position}. An answer
        a translation lacks or cannot fill (a file edited unlike English at a start) is
        given in English, and logged once: never no answer.
        """
        try:
            return self._replies(key, language, buttons, values)
        except (ContentError, KeyError, TypeError, ValueError) as error:
            if language == DEFAULT_LANGUAGE:
                raise
            self._tell(f"{language}.yml: answers.{key} cannot be given ({error}); it is "
                       "given in English until it is mended")
            return self._replies(key, DEFAULT_LANGUAGE, buttons, values)

    def _replies(
        self,
        key: str,
        language: str,
        buttons: Sequence[Button],
        values: Optional[Mapping[str, str]],
    ) -> List[Reply]:
        texts = self.language_file(language)
        answer = _section(texts, "answers").get(key)
        if answer is None:
            raise ContentError(f"no answer '{key}' for language '{language}'")
        extra = tuple(sorted((values or {}).items()))
        values = self._placeholder_values(language, values or {})
        replies = []
        for part, message in enumerate(answer):
            if any(not values.get(name) for name in message.get("requires", ())):
                continue
            topic_buttons = [self._topic_button(language, t) for t in message.get("buttons", ())]
            replies.append(
                Reply(fill(message["text"], values), tuple(topic_buttons), key, part, extra)
            )
        if buttons and replies:
            replies[-1] = replace(replies[-1], buttons=replies[-1].buttons + tuple(buttons))
        return replies

    def ready_reply(self, key: str, language: str, values: Mapping[str, str]) -> Reply:
        """A counsellor's ready reply in `language`, its {date} and {time} from `values`."""
        text = self._entry(language, "ready_replies", key)
        if text is None:
            raise ContentError(f"no ready reply '{key}'")
        filled = fill(text, self._placeholder_values(language, values))
        return Reply(filled, (), READY + key, 0, tuple(sorted(values.items())))

    def ready_replies(self, language: str) -> List[Dict[str, Any]]:
        """The ready replies of `language`, the operator's settings filled in, and the
        `fields` the counsellor fills (such as {date}) left as placeholders."""
        texts = self.language_file(language)
        keys = dict.fromkeys([*_section(self.language_file(DEFAULT_LANGUAGE), "ready_replies"),
                              *_section(texts, "ready_replies")])
        known = self._placeholder_values(language, {})
        listed = []
        for key in keys:
            text = self._entry(language, "ready_replies", key)
            fields = _unfilled(text, known)
            values = {**known, **{f: f"{{{f}}}" for f in fields}}
            listed.append({"key": key, "text": fill(text, values), "fields": fields})
        return listed

    def ready_reply_fields(self, key: str, language: str) -> List[str]:
        """The placeholders of a ready reply that the counsellor fills, not the settings."""
        text = self._entry(language, "ready_replies", key)
        if text is None:
            raise ContentError(f"no ready reply '{key}'")
        return _unfilled(text, self._placeholder_values(language, {}))

    def gloss(self, source: Mapping[str, Any], language: str) -> Optional[str]:
        """The message `source` (a Reply's source()) says, in `language`; None if the
        content has changed since and no longer holds it."""
        key, values = source.get("key"), source.get("values") or {}
        try:
            if key.startswith(READY):
                return self.ready_reply(key[len(READY):], language, values).text
            texts = self.language_file(language)
            message = texts["answers"][key][int(source.get("part", 0))]
            return fill(message["text"], self._placeholder_values(language, values))
        except (AttributeError, ContentError, KeyError, IndexError, TypeError, ValueError):
            return None

    def topic_name(self, intent: Optional[str], language: str) -> Optional[str]:
        """What the assistant understood, in words, in `language`."""
        return (self._entry(language, "topic_names", intent or "")
                or self._entry(language, "topic_names", "not_understood"))

    def choice_buttons(
        self, language: str, choices: Sequence[Tuple[str, str]]
    ) -> List[Button]:
        """Buttons titled from the language's `choices`, each with its payload."""
        return [{"title": self._title(language, "choices", key), "payload": payload}
                for key, payload in choices]

    def topic_buttons(self, language: str, intents: Sequence[str]) -> List[Button]:
        return [self._topic_button(language, intent) for intent in intents]

    def topics(self, language: str) -> List[str]:
        """Intents that have a topic button (English's too: a title a translation lacks
        is given in English)."""
        return list(dict.fromkeys([*_section(self.language_file(DEFAULT_LANGUAGE), "topics"),
                                   *_section(self.language_file(language), "topics")]))

    def _topic_button(self, language: str, intent: str) -> Button:
        return {"title": self._title(language, "topics", intent), "payload": f"/{intent}"}

    def _title(self, language: str, section: str, key: str) -> str:
        title = self._entry(language, section, key)
        if title is None:
            raise ContentError(f"no {section} title '{key}' in {DEFAULT_LANGUAGE}.yml")
        return title

    def _placeholder_values(
        self, language: str, extra: Mapping[str, str]
    ) -> Dict[str, Optional[str]]:
        settings = self.settings()
        values = {
            name: None if value is None else str(value)
            for name, value in settings.items()
            if not isinstance(value, dict)
        }
        values.update(extra)
        texts = self.language_file(language)
        named = _section(texts, "days")
        days = {day: named.get(day) or self._entry(language, "days", day) or day
                for day in (*DAYS, "closed")}
        if "opening_day" in extra:  # when the office opens next: the day in this language,
            # its date when it is a week or more away, the time
            day = days.get(extra["opening_day"], extra["opening_day"])
            when = (day, extra.get("opening_date"), extra.get("opening_time"))
            values["opening"] = " ".join(part for part in when if part)
        hours = self.office_hours()
        values["office_hours"] = hours.describe(days, datetime.now(ZoneInfo(hours.zone)).date())
        if texts.get("direction") == "rtl":
            values = {
                name: None if value is None else f"{LTR_ISOLATE}{value}{POP_ISOLATE}"
                for name, value in values.items()
            }
        return values


def placeholders(text: str) -> List[str]:
    """Names of the {placeholders} in `text`."""
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def fill(text: str, values: Mapping[str, Optional[str]]) -> str:
    """`text` with its placeholders filled; an unknown or empty one is an error."""
    for name in placeholders(text):
        if not values.get(name):
            raise ContentError(f"placeholder '{{{name}}}' has no value in settings.yml")
    return text.format_map(values)
