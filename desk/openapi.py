"""The desk's OpenAPI 3.0 document, served at /openapi.json.

tests/desk/test_app.py checks that it names exactly the routes the app has and that
real answers match its schemas.
"""

from typing import Any, Dict

from avrr.vocabulary import CODES, GLOSS_LANGUAGES
from desk.stats import CHARTS, DEFAULT_DAYS, MAX_DAYS
from desk.store import ROLES

URGENCY = {"type": "string", "enum": ["urgent", "legal", "normal"]}
ROLE = {
    "type": "string",
    "enum": list(ROLES),
    "description": "a viewer sees the statistics only (403 from every other data route)",
}
LANGUAGE = {"type": "string", "enum": list(CODES)}
GLOSS_LANGUAGE = {"type": "string", "enum": list(GLOSS_LANGUAGES)}


def text(limit: int) -> Dict[str, Any]:
    """A non-empty string of at most `limit` characters (the desk refuses others with 400)."""
    return {"type": "string", "minLength": 1, "maxLength": limit}


# Ids are 32-bit integers (PostgreSQL's INTEGER): the desk refuses others with 400.
ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
TIME = {"type": "string", "format": "date-time"}
DAY = {"type": "string", "format": "date", "example": "2024-05-01"}
# A password a counsellor or an administrator sets: at least 10 characters.
PASSWORD = {"type": "string", "minLength": 10, "maxLength": 256}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
READINESS = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "unavailable"]},
        "failing": {"type": "array", "items": {"type": "string"}},
    },
}
FORBIDDEN = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "must_change_password": {
            "type": "boolean",
            "description": "true when the counsellor must change a temporary password first",
        },
    },
}
TICKET = {
    "type": "object",
    "required": [
        "id",
        "conversation_id",
        "channel",
        "language",
        "topic",
        "urgency",
        "status",
        "created_at",
        "updated_at",
        "consent_at",
        "consent_language",
        "waiting",
        "message_count",
        "assignee",
    ],
    "properties": {
        "id": {"type": "integer"},
        "conversation_id": {"type": "string", "description": "Rasa's sender id"},
        "channel": {"type": "string", "example": "socketio"},
        "language": {"type": "string", "example": "ar"},
        "topic": {"type": "string", "example": "request_human"},
        "urgency": URGENCY,
        "status": {"type": "string", "enum": ["open", "closed"]},
        "created_at": TIME,
        "updated_at": TIME,
        "consent_at": TIME,
        "consent_language": {"type": "string"},
        "waiting": {"type": "boolean", "description": "the person wrote last"},
        "message_count": {"type": "integer"},
        "assignee": {
            "type": "string",
            "nullable": True,
            "description": "the counsellor who holds the ticket: only they answer or close it",
        },
    },
}
# What GET /api/tickets and GET /api/tickets/{id} add for the reader.
READABLE = {
    "type": "object",
    "required": ["topic_name", "gloss_language"],
    "properties": {
        "topic_name": {
            "type": "string",
            "nullable": True,
            "description": "the topic in words, in the reader's language",
        },
        "gloss_language": GLOSS_LANGUAGE,
    },
}
# Which content a message says: an answer's part, or a ready reply, with its values.
CONTENT = {
    "type": "object",
    "required": ["key", "part", "values"],
    "properties": {
        "key": {"type": "string", "example": "answers.ask_cost"},
        "part": {"type": "integer"},
        "values": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
MESSAGE = {
    "type": "object",
    "required": [
        "id",
        "sender",
        "text",
        "at",
        "delivered",
        "undeliverable",
        "author",
        "content",
        "intent",
        "confidence",
    ],
    "properties": {
        "id": {"type": "integer"},
        "sender": {"type": "string", "enum": ["person", "assistant", "counsellor"]},
        "text": {"type": "string"},
        "at": TIME,
        "delivered": {
            "type": "boolean",
            "nullable": True,
            "description": "for a counsellor's reply: whether the channel confirmed it",
        },
        "undeliverable": {
            "type": "string",
            "nullable": True,
            "description": "why a counsellor's reply can never be delivered, if so",
        },
        "author": {
            "type": "string",
            "nullable": True,
            "description": "for a counsellor's reply: who wrote it ('api' for the API token)",
        },
        "content": dict(
            CONTENT,
            nullable=True,
            description="which content an assistant's message or a ready reply says",
        ),
        "intent": {
            "type": "string",
            "nullable": True,
            "description": "what the assistant understood of a message of the person",
        },
        "confidence": {
            "type": "number",
            "nullable": True,
            "minimum": 0,
            "maximum": 1,
            "description": "how sure the assistant was of `intent`",
        },
    },
}
# A message as a ticket's answers show it to the reader.
READABLE_MESSAGE = {
    "allOf": [
        MESSAGE,
        {
            "type": "object",
            "required": ["gloss"],
            "properties": {
                "gloss": {
                    "type": "string",
                    "nullable": True,
                    "description": (
                        "the same message in the reader's language, from the content it was "
                        "written from; null for free text and for a message already in the "
                        "reader's language"
                    ),
                },
                "topic": {
                    "type": "string",
                    "nullable": True,
                    "description": "for the person's messages: what the assistant understood, "
                    "in words, in the reader's language",
                },
            },
        },
    ]
}
EVENT = {
    "type": "object",
    "required": ["at", "actor", "action", "detail"],
    "properties": {
        "at": TIME,
        "actor": {"type": "string", "description": "a counsellor's username, or 'api'"},
        "action": {"type": "string", "example": "claimed"},
        "detail": {"type": "string"},
    },
}
ACCOUNT = {
    "type": "object",
    "required": ["username", "languages", "role", "must_change_password", "disabled"],
    "properties": {
        "username": {"type": "string"},
        "languages": {"type": "array", "items": {"type": "string"}},
        "role": ROLE,
        "must_change_password": {
            "type": "boolean",
            "description": "the password is temporary: to be changed at the next sign-in",
        },
        "disabled": {"type": "boolean"},
    },
}
READY_REPLY = {
    "type": "object",
    "required": ["key", "text", "fields"],
    "properties": {
        "key": {"type": "string"},
        "text": {"type": "string", "description": "with the fields left as {placeholders}"},
        "fields": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the placeholders the counsellor fills in (`values`)",
        },
    },
}
# What the assistant understood of a message of the person.
UNDERSTOOD = {
    "intent": {"type": "string", "minLength": 1, "maxLength": 64, "nullable": True},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
}
NEW_TICKET = {
    "type": "object",
    "required": ["idempotency_key", "conversation_id", "channel", "language", "consent"],
    "properties": {
        "idempotency_key": {"type": "string", "minLength": 8, "maxLength": 128},
        "conversation_id": text(128),
        "channel": text(32),
        "language": text(8),
        "topic": {"type": "string"},
        "urgency": URGENCY,
        "consent": {
            "type": "object",
            "required": ["at"],
            "properties": {"at": TIME, "language": {"type": "string"}},
        },
        "transcript": {
            "type": "array",
            "maxItems": 500,
            "items": {
                "type": "object",
                "required": ["sender", "text"],
                "properties": {
                    "sender": {"type": "string", "enum": ["person", "assistant"]},
                    "text": text(4096),
                    "at": TIME,
                    **UNDERSTOOD,
                    "content": {
                        "type": "object",
                        "nullable": True,
                        "description": "which content an assistant's message says",
                        "required": ["key"],
                        "properties": {
                            "key": text(100),
                            "part": {"type": "integer", "default": 0},
                            "values": {
                                "type": "object",
                                "maxProperties": 10,
                                "additionalProperties": {"type": "string", "maxLength": 100},
                            },
                        },
                    },
                },
            },
        },
    },
}
ME = {
    "type": "object",
    "required": ["username", "languages", "role", "must_change_password", "csrf_token"],
    "properties": {
        "username": {"type": "string", "nullable": True},
        "languages": {"type": "array", "items": {"type": "string"}},
        "role": ROLE,
        "must_change_password": {
            "type": "boolean",
            "description": (
                "the password is temporary: until POST /api/me/password succeeds, every "
                "other route but /api/logout answers 403"
            ),
        },
        "csrf_token": {"type": "string", "nullable": True},
    },
}
LANGUAGES = {"type": "array", "minItems": 1, "items": LANGUAGE}
# Statistics: counts per metric (conversations, messages, not_understood, tickets, ...).
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
WAIT = {
    "type": "object",
    "required": ["count", "median_s", "p90_s"],
    "properties": {
        "count": {"type": "integer", "description": "first replies to tickets"},
        "median_s": {"type": "number", "nullable": True, "description": "null without any"},
        "p90_s": {"type": "number", "nullable": True, "description": "the 90th percentile"},
    },
}
STATS = {
    "type": "object",
    "required": [
        "from",
        "to",
        "totals",
        "by_language",
        "by_channel",
        "topics",
        "fallback_rate",
        "eligibility",
        "wait",
        "daily",
    ],
    "properties": {
        "from": DAY,
        "to": DAY,
        "totals": dict(COUNTS, description="per metric, over every language and channel"),
        "by_language": {"type": "object", "additionalProperties": COUNTS},
        "by_channel": {"type": "object", "additionalProperties": COUNTS},
        "topics": {
            "type": "object",
            "additionalProperties": COUNTS,
            "description": "per language: the messages per intent understood, most first",
        },
        "fallback_rate": {
            "type": "object",
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
            "description": "per language: the share of the person's messages not understood",
        },
        "eligibility": dict(COUNTS, description="the eligibility check's outcomes"),
        "wait": {
            "type": "object",
            "required": [*WAIT["required"], "by_language"],
            "properties": {
                **WAIT["properties"],
                "by_language": {"type": "object", "additionalProperties": WAIT},
            },
            "description": "the wait from a ticket to a counsellor's first reply, in seconds",
        },
        "daily": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["day", "channel", "language", "metric", "count"],
                "properties": {
                    "day": DAY,
                    "channel": {"type": "string"},
                    "language": {"type": "string"},
                    "metric": {"type": "string", "example": "topic:ask_cost"},
                    "count": {"type": "integer"},
                },
            },
            "description": "every count of the period by day (in Hungary), channel, language, "
                           "metric",
        },
    },
}
# A question the assistant did not understand (redacted), for administrators to label.
QUESTION = {
    "type": "object",
    "required": [
        "id",
        "day",
        "channel",
        "language",
        "text",
        "label",
        "labelled_by",
        "labelled_at",
    ],
    "properties": {
        "id": {"type": "integer"},
        "day": DAY,
        "channel": {"type": "string"},
        "language": {"type": "string"},
        "text": {"type": "string", "description": "phone numbers and e-mail addresses redacted"},
        "label": {"type": "string", "nullable": True, "description": "the right intent"},
        "labelled_by": {"type": "string", "nullable": True},
        "labelled_at": dict(TIME, nullable=True),
    },
}


def _json(schema: Dict[str, Any], description: str = "OK") -> Dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: Dict[str, Any]) -> Dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(ERROR, "the request is not valid"),
    "401": _json(ERROR, "not authenticated"),
    "403": _json(
        FORBIDDEN,
        "not allowed: a wrong CSRF token, a route for the API token or for administrators "
        "only, a viewer off the statistics, or a temporary password to change first "
        "(`must_change_password`: true)",
    ),
    "413": _json(ERROR, "the body is larger than 1 MiB"),
    "503": _json(ERROR, "the desk's database did not answer: send again after Retry-After"),
}
TICKET_ID = [{"name": "ticket_id", "in": "path", "required": True, "schema": ID}]
USERNAME = [{"name": "username", "in": "path", "required": True, "schema": text(64)}]
QUESTION_ID = [{"name": "question_id", "in": "path", "required": True, "schema": ID}]
PERIOD = [
    {
        "name": "from",
        "in": "query",
        "description": f"the first day (in Hungary), inclusive; default: {DEFAULT_DAYS - 1} days "
        "before `to`",
        "schema": DAY,
    },
    {
        "name": "to",
        "in": "query",
        "description": "the last day (in Hungary), inclusive; default: today",
        "schema": DAY,
    },
]
BAD_PERIOD = _json(
    ERROR,
    "not a valid period: not a day (YYYY-MM-DD), `from` after `to`, or more than "
    f"{MAX_DAYS} days",
)
GLOSS = {
    "name": "gloss",
    "in": "query",
    "description": (
        "the reader's language for topics and glosses; default: the first of the "
        "counsellor's languages that can gloss, else en"
    ),
    "schema": GLOSS_LANGUAGE,
}
NO_TICKET = _json(ERROR, "no such ticket")
NO_COUNSELLOR = _json(ERROR, "no such counsellor")
STATISTICS = "administrators, viewers and the API token"
HELD = "another counsellor holds the ticket"


def document() -> Dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Counsellor desk",
            "version": "1",
            "description": (
                "Tickets of people who asked the AVRR assistant for a human counsellor. "
                "Every endpoint but /health, the console and statistics pages and login needs "
                "`Authorization: Bearer <DESK_API_TOKEN>` or a counsellor's session cookie; "
                "unsafe requests with the cookie also need `X-CSRF-Token`. Accounts are "
                "managed by administrators (or the API token). A viewer sees the statistics "
                "only. A counsellor with a temporary "
                "password (`must_change_password`) gets 403 from every route but "
                "/api/logout and /api/me/password until they change it."
            ),
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "desk_session"},
            },
            "schemas": {
                "Ticket": TICKET,
                "Message": MESSAGE,
                "Account": ACCOUNT,
                "Event": EVENT,
                "ReadyReply": READY_REPLY,
                "Statistics": STATS,
                "Question": QUESTION,
                "Error": ERROR,
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/health": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"status": {"type": "string"}}}
                        )
                    },
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: the desk's database answers",
                    "security": [],
                    "responses": {
                        "200": _json(READINESS),
                        "503": _json(READINESS, "the database does not answer"),
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "The counsellors' web console (a page with no data of its own)",
                    "security": [],
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": _json({"type": "object"}),
                        "401": ERRORS["401"],
                        "403": ERRORS["403"],
                    },
                }
            },
            "/api/login": {
                "post": {
                    "summary": "Sign a counsellor in; sets an HttpOnly, SameSite=Strict cookie",
                    "security": [],
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["username", "password"],
                            "properties": {
                                "username": text(64),
                                "password": text(256),
                            },
                        }
                    ),
                    "responses": {
                        "200": _json(ME),
                        "400": ERRORS["400"],
                        "401": ERRORS["401"],
                        "415": _json(ERROR, "the body is not application/json"),
                        "429": _json(ERROR, "too many failed attempts"),
                    },
                }
            },
            "/api/logout": {
                "post": {
                    "summary": "End the counsellor's session",
                    "responses": {"204": {"description": "signed out"}, **ERRORS},
                }
            },
            "/api/me": {
                "get": {
                    "summary": "Who is signed in, their languages, role and CSRF token",
                    "responses": {"200": _json(ME), "401": ERRORS["401"]},
                }
            },
            "/api/me/password": {
                "post": {
                    "summary": "A signed-in counsellor changes their own password",
                    "description": (
                        "Ends `must_change_password` and the counsellor's other sessions. "
                        "400 for the API token, which has no password."
                    ),
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["old", "new"],
                            "properties": {"old": text(256), "new": PASSWORD},
                        }
                    ),
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["changed"],
                                "properties": {"changed": {"type": "boolean", "enum": [True]}},
                            },
                            "changed",
                        ),
                        **ERRORS,
                        "403": _json(FORBIDDEN, "the old password is wrong (or a wrong CSRF "
                                     "token)"),
                        "429": _json(ERROR, "five wrong old passwords in 15 minutes: wait"),
                    },
                }
            },
            "/api/counsellors": {
                "get": {
                    "summary": "The accounts (administrators)",
                    "responses": {"200": _json({"type": "array", "items": ACCOUNT}), **ERRORS},
                },
                "post": {
                    "summary": "Add an account with a temporary password (administrators)",
                    "description": (
                        "The password given is temporary: it is to be changed at the first "
                        "sign-in. The desk's first account is always an administrator."
                    ),
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["username", "password", "languages"],
                            "properties": {
                                "username": {
                                    "type": "string",
                                    "pattern": "^[a-z0-9][a-z0-9._-]{1,63}$",
                                },
                                "password": PASSWORD,
                                "languages": LANGUAGES,
                                "role": dict(ROLE, default="counsellor"),
                            },
                        }
                    ),
                    "responses": {
                        "201": _json(ACCOUNT, "added"),
                        "409": _json(ERROR, "the username is taken"),
                        **ERRORS,
                    },
                },
            },
            "/api/counsellors/history": {
                "get": {
                    "summary": "Changes to accounts, newest first (administrators)",
                    "responses": {"200": _json({"type": "array", "items": EVENT}), **ERRORS},
                }
            },
            "/api/counsellors/{username}": {
                "patch": {
                    "summary": "Change an account's languages and/or role (administrators)",
                    "parameters": USERNAME,
                    "requestBody": _body(
                        {
                            "type": "object",
                            "anyOf": [{"required": ["languages"]}, {"required": ["role"]}],
                            "properties": {"languages": LANGUAGES, "role": ROLE},
                        }
                    ),
                    "responses": {
                        "200": _json(ACCOUNT),
                        "404": NO_COUNSELLOR,
                        "409": _json(ERROR, "the desk needs at least one enabled administrator"),
                        **ERRORS,
                    },
                }
            },
            "/api/counsellors/{username}/disable": {
                "post": {
                    "summary": "Disable an account (administrators)",
                    "description": (
                        "The counsellor is signed out everywhere and their tickets are released."
                    ),
                    "parameters": USERNAME,
                    "responses": {
                        "200": _json(ACCOUNT),
                        "404": NO_COUNSELLOR,
                        "409": _json(
                            ERROR, "your own account, or the last enabled administrator"
                        ),
                        **ERRORS,
                    },
                }
            },
            "/api/counsellors/{username}/enable": {
                "post": {
                    "summary": "Enable a disabled account (administrators)",
                    "parameters": USERNAME,
                    "responses": {"200": _json(ACCOUNT), "404": NO_COUNSELLOR, **ERRORS},
                }
            },
            "/api/counsellors/{username}/password": {
                "post": {
                    "summary": "Give an account a temporary password (administrators)",
                    "description": (
                        "The counsellor is signed out everywhere and must change the password "
                        "at the next sign-in."
                    ),
                    "parameters": USERNAME,
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["password"],
                            "properties": {"password": PASSWORD},
                        }
                    ),
                    "responses": {"200": _json(ACCOUNT), "404": NO_COUNSELLOR, **ERRORS},
                }
            },
            "/api/replies": {
                "get": {
                    "summary": "The ready replies of a language, for choosing one",
                    "parameters": [
                        {
                            "name": "language",
                            "in": "query",
                            "description": "default: the reader's gloss language",
                            "schema": LANGUAGE,
                        }
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": READY_REPLY}),
                        **ERRORS,
                    },
                }
            },
            "/stats": {
                "get": {
                    "summary": "The statistics page (a page with no data of its own)",
                    "security": [],
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                }
            },
            "/api/stats": {
                "get": {
                    "summary": f"Statistics of a period, without personal data ({STATISTICS})",
                    "description": (
                        "Counted by the desk every 10 s from the events the assistant stored, "
                        "and from the desk's own tickets, waits and deletion requests."
                    ),
                    "parameters": PERIOD,
                    "responses": {"200": _json(STATS), **ERRORS, "400": BAD_PERIOD},
                }
            },
            "/api/stats.csv": {
                "get": {
                    "summary": f"The statistics of a period as CSV ({STATISTICS})",
                    "parameters": PERIOD,
                    "responses": {
                        "200": {
                            "description": (
                                "CSV with the header day,channel,language,metric,value: one "
                                "line per count, and the waits' median and 90th percentile "
                                "(first_reply_wait_median_s, first_reply_wait_p90_s) per day, "
                                "channel and language"
                            ),
                            "headers": {
                                "Content-Disposition": {
                                    "schema": {"type": "string"},
                                    "description": "attachment; filename=\"avrr-stats-"
                                    "<from>-<to>.csv\"",
                                }
                            },
                            "content": {"text/csv": {"schema": {"type": "string"}}},
                        },
                        **ERRORS,
                        "400": BAD_PERIOD,
                    },
                }
            },
            "/api/stats/charts/{name}.svg": {
                "get": {
                    "summary": f"A chart of a period, drawn on the server ({STATISTICS})",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": list(CHARTS)},
                        },
                        *PERIOD,
                        dict(
                            GLOSS,
                            description=(
                                "the language of the topics chart's names; default: the first "
                                "of the reader's languages that can gloss, else en"
                            ),
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "SVG, without script",
                            "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                        },
                        "404": _json(ERROR, "no such chart"),
                        **ERRORS,
                        "400": _json(ERROR, "not a valid period, or an unknown gloss language"),
                    },
                }
            },
            "/api/stats/refresh": {
                "post": {
                    "summary": "Count what the assistant stored since the last run, now "
                    "(administrators)",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["events_read"],
                                "properties": {"events_read": {"type": "integer", "minimum": 0}},
                            }
                        ),
                        **ERRORS,
                    },
                }
            },
            "/api/unanswered": {
                "get": {
                    "summary": "Questions the assistant did not understand, newest first "
                    "(administrators)",
                    "description": (
                        "At most 500. Their texts are redacted; a deletion request of the "
                        "person removes them."
                    ),
                    "parameters": [
                        {"name": "language", "in": "query", "schema": LANGUAGE},
                        {
                            "name": "labelled",
                            "in": "query",
                            "description": "true: the labelled ones only; false: those still "
                            "to label; default: both",
                            "schema": {"type": "boolean"},
                        },
                    ],
                    "responses": {"200": _json({"type": "array", "items": QUESTION}), **ERRORS},
                }
            },
            "/api/intents": {
                "get": {
                    "summary": "The intents a question can be labelled with, in words in the "
                    "reader's language (administrators)",
                    "parameters": [GLOSS],
                    "responses": {"200": _json({"type": "array", "items": {
                        "type": "object",
                        "required": ["intent", "name"],
                        "properties": {"intent": {"type": "string"},
                                       "name": {"type": "string", "nullable": True}},
                    }}), **ERRORS},
                }
            },
            "/api/unanswered/{question_id}/label": {
                "post": {
                    "summary": "Label a question with the intent it meant (administrators)",
                    "description": (
                        "`python -m desk export-labels` writes the labelled questions as NLU "
                        "data."
                    ),
                    "parameters": QUESTION_ID,
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["intent"],
                            "properties": {
                                "intent": dict(
                                    text(64),
                                    description=(
                                        "one of the topics the content names, but "
                                        "not_understood"
                                    ),
                                )
                            },
                        }
                    ),
                    "responses": {
                        "200": _json(QUESTION),
                        "404": _json(ERROR, "no such question"),
                        **ERRORS,
                        "400": _json(ERROR, "an unknown intent, or not a question id"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Gauges for Prometheus (administrators, or the API token as "
                    "its bearer credentials): open tickets by urgency, waiting tickets and "
                    "the longest wait, undelivered and undeliverable replies, pending "
                    "hand-backs",
                    "responses": {
                        "200": {"description": "Prometheus text format",
                                "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **ERRORS,
                    },
                }
            },
            "/api/status": {
                "get": {
                    "summary": "The assistant's requests to the desk: waiting, failed for good",
                    "description": (
                        "From the action server's outbox. `dead` requests need an operator: "
                        "`python -m actions.outbox` lists them, `... retry` sends them again. "
                        "`outbox` is null, with a `reason`, when the action server cannot "
                        "be asked."
                    ),
                    "responses": {"200": _json({
                        "type": "object",
                        "required": ["outbox"],
                        "properties": {
                            "outbox": {
                                "type": "object",
                                "nullable": True,
                                "properties": {"pending": {"type": "integer"},
                                               "dead": {"type": "integer"}},
                            },
                            "reason": {"type": "string"},
                        },
                    }), "401": ERRORS["401"], "403": ERRORS["403"]},
                }
            },
            "/api/tickets": {
                "get": {
                    "summary": "Tickets, most urgent first, then oldest first",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {
                                "type": "string",
                                "enum": ["open", "closed", "all"],
                                "default": "open",
                            },
                        },
                        {"name": "language", "in": "query", "schema": {"type": "string"}},
                        GLOSS,
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": {"allOf": [TICKET, READABLE]}}),
                        **ERRORS,
                    },
                },
                "post": {
                    "summary": "Open a ticket (the assistant's action server; API token only)",
                    "description": (
                        "Idempotent: the same idempotency key, or an open ticket of the same "
                        "conversation, returns that ticket with 200."
                    ),
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
                    ],
                    "requestBody": _body(NEW_TICKET),
                    "responses": {
                        "201": _json(
                            {
                                "allOf": [
                                    TICKET,
                                    {
                                        "type": "object",
                                        "properties": {"queue_position": {"type": "integer"}},
                                    },
                                ]
                            },
                            "created",
                        ),
                        "200": _json(
                            {
                                "allOf": [
                                    TICKET,
                                    {
                                        "type": "object",
                                        "properties": {"queue_position": {"type": "integer"}},
                                    },
                                ]
                            },
                            "already there",
                        ),
                        "410": _json(ERROR, "the person deleted the conversation after the "
                                            "consent this ticket carries: it is not made"),
                        **ERRORS,
                    },
                },
            },
            "/api/tickets/{ticket_id}": {
                "get": {
                    "summary": "A ticket with its transcript, messages and history",
                    "parameters": [*TICKET_ID, GLOSS],
                    "responses": {
                        "200": _json(
                            {
                                "allOf": [
                                    TICKET,
                                    READABLE,
                                    {
                                        "type": "object",
                                        "required": ["messages", "history"],
                                        "properties": {
                                            "messages": {
                                                "type": "array",
                                                "items": READABLE_MESSAGE,
                                            },
                                            "history": {
                                                "type": "array",
                                                "items": EVENT,
                                                "description": (
                                                    "who claimed, assigned, replied, closed"
                                                ),
                                            },
                                        },
                                    },
                                ]
                            }
                        ),
                        "404": NO_TICKET,
                        **ERRORS,
                    },
                }
            },
            "/api/tickets/{ticket_id}/messages": {
                "post": {
                    "summary": "A counsellor's reply, delivered to the person in their channel",
                    "description": (
                        "Free text (`text`), or a ready reply (`reply_key` with the `values` of "
                        "its fields, see /api/replies) sent in the person's language. The "
                        "counsellor who replies to a ticket nobody holds gets it. If Rasa "
                        "cannot take it now, it is kept (delivered: false) and retried. "
                        "`idempotency_key` (the console's key of one draft): the same key "
                        "from the same author on the same ticket returns the reply already "
                        "taken, so a reply sent again after a lost answer goes out once."
                    ),
                    "parameters": TICKET_ID,
                    "requestBody": _body(
                        {
                            "oneOf": [
                                {
                                    "type": "object",
                                    "required": ["text"],
                                    "not": {"required": ["reply_key"]},
                                    "properties": {"text": text(4096),
                                                   "idempotency_key": text(100)},
                                },
                                {
                                    "type": "object",
                                    "required": ["reply_key"],
                                    "properties": {
                                        "idempotency_key": text(100),
                                        "reply_key": text(64),
                                        "values": {
                                            "type": "object",
                                            "additionalProperties": text(100),
                                        },
                                    },
                                },
                            ]
                        }
                    ),
                    "responses": {
                        "201": _json(READABLE_MESSAGE, "stored"),
                        "404": NO_TICKET,
                        "409": _json(ERROR, f"the ticket is closed, or {HELD}"),
                        **ERRORS,
                    },
                }
            },
            "/api/tickets/{ticket_id}/close": {
                "post": {
                    "summary": "Close the ticket and give the conversation back to the assistant",
                    "parameters": TICKET_ID,
                    "responses": {
                        "200": _json(TICKET),
                        "404": NO_TICKET,
                        "409": _json(ERROR, HELD),
                        **ERRORS,
                    },
                }
            },
            "/api/tickets/{ticket_id}/claim": {
                "post": {
                    "summary": "Take the ticket: only its holder answers or closes it",
                    "parameters": TICKET_ID,
                    "responses": {
                        "200": _json(TICKET),
                        "404": NO_TICKET,
                        "409": _json(ERROR, f"{HELD}, or the ticket is closed"),
                        **ERRORS,
                        "400": _json(
                            ERROR, "a signed-in counsellor claims (the API token assigns)"
                        ),
                    },
                }
            },
            "/api/tickets/{ticket_id}/release": {
                "post": {
                    "summary": "Nobody holds the ticket any more (its holder, or an administrator)",
                    "parameters": TICKET_ID,
                    "responses": {
                        "200": _json(TICKET),
                        "404": NO_TICKET,
                        "409": _json(ERROR, f"{HELD} and you are not an administrator"),
                        **ERRORS,
                    },
                }
            },
            "/api/tickets/{ticket_id}/assign": {
                "post": {
                    "summary": "Give an open ticket to a counsellor (administrators)",
                    "parameters": TICKET_ID,
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["username"],
                            "properties": {"username": text(64)},
                        }
                    ),
                    "responses": {
                        "200": _json(TICKET),
                        "404": _json(ERROR, "no such ticket, or no enabled counsellor by that "
                                     "name"),
                        "409": _json(ERROR, "the ticket is closed"),
                        **ERRORS,
                    },
                }
            },
            "/api/inbound": {
                "post": {
                    "summary": "A message the person wrote during the handoff (API token only)",
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["ticket_key", "idempotency_key", "text"],
                            "properties": {
                                "ticket_key": text(128),
                                "conversation_id": dict(text(128), description=(
                                    "the person's conversation: its open ticket takes the "
                                    "message when ticket_key is unknown or closed")),
                                "idempotency_key": text(160),
                                "text": text(4096),
                                "at": TIME,
                                "urgent": {
                                    "type": "boolean",
                                    "description": "raises the ticket to urgent",
                                },
                                **UNDERSTOOD,
                            },
                        }
                    ),
                    "responses": {
                        "201": _json(MESSAGE),
                        "404": _json(ERROR, "no ticket with that key"),
                        "409": _json(ERROR, "the ticket is closed (and the conversation has "
                                            "no open one)"),
                        **ERRORS,
                    },
                }
            },
            "/api/conversations/{conversation_id}": {
                "delete": {
                    "summary": (
                        "Delete every ticket of a conversation (the person's data deletion; "
                        "API token only)"
                    ),
                    "parameters": [
                        {
                            "name": "conversation_id",
                            "in": "path",
                            "required": True,
                            "schema": text(160),
                        },
                        {
                            "name": "language",
                            "in": "query",
                            "description": (
                                "the conversation's language, to count the deletion request "
                                "in the statistics"
                            ),
                            "schema": {
                                "type": "string",
                                "enum": [*CODES, "unknown"],
                                "default": "unknown",
                            },
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"deleted_tickets": {"type": "integer"}},
                            }
                        ),
                        **ERRORS,
                    },
                }
            },
        },
    }
