"""The desk's OpenAPI 3.0 document, served at /openapi.json.

tests/desk/test_openapi.py checks that it names exactly the routes the app has and that
real answers match its schemas.
"""

from typing import Any, Dict

URGENCY = {"type": "string", "enum": ["urgent", "legal", "normal"]}


def text(limit: int) -> Dict[str, Any]:
    """A non-empty string of at most `limit` characters (the desk refuses others with 400)."""
    return {"type": "string", "minLength": 1, "maxLength": limit}


# Ids are 32-bit integers (PostgreSQL's INTEGER): the desk refuses others with 400.
ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
TIME = {"type": "string", "format": "date-time"}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
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
    },
}
MESSAGE = {
    "type": "object",
    "required": ["id", "sender", "text", "at", "delivered"],
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
    },
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
                },
            },
        },
    },
}
ME = {
    "type": "object",
    "required": ["username", "languages", "csrf_token"],
    "properties": {
        "username": {"type": "string", "nullable": True},
        "languages": {"type": "array", "items": {"type": "string"}},
        "csrf_token": {"type": "string", "nullable": True},
    },
}


def _json(schema: Dict[str, Any], description: str = "OK") -> Dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: Dict[str, Any]) -> Dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(ERROR, "the request is not valid"),
    "401": _json(ERROR, "not authenticated"),
    "403": _json(ERROR, "not allowed (wrong CSRF token, or for the API token only)"),
    "413": _json(ERROR, "the body is larger than 1 MiB"),
}
TICKET_ID = [{"name": "ticket_id", "in": "path", "required": True, "schema": ID}]


def document() -> Dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Counsellor desk",
            "version": "1",
            "description": (
                "Tickets of people who asked the AVRR assistant for a human counsellor. "
                "Every endpoint but /health, the console page and login needs "
                "`Authorization: Bearer <DESK_API_TOKEN>` or a counsellor's session cookie; "
                "unsafe requests with the cookie also need `X-CSRF-Token`."
            ),
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "desk_session"},
            },
            "schemas": {"Ticket": TICKET, "Message": MESSAGE, "Error": ERROR},
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
                    "responses": {"200": _json({"type": "object"}), "401": ERRORS["401"]},
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
                    "summary": "Who is signed in, their languages and CSRF token",
                    "responses": {"200": _json(ME), "401": ERRORS["401"]},
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
                    }), "401": ERRORS["401"]},
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
                    ],
                    "responses": {"200": _json({"type": "array", "items": TICKET}), **ERRORS},
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
                        **ERRORS,
                    },
                },
            },
            "/api/tickets/{ticket_id}": {
                "get": {
                    "summary": "A ticket with its transcript and messages",
                    "parameters": TICKET_ID,
                    "responses": {
                        "200": _json(
                            {
                                "allOf": [
                                    TICKET,
                                    {
                                        "type": "object",
                                        "properties": {
                                            "messages": {"type": "array", "items": MESSAGE}
                                        },
                                    },
                                ]
                            }
                        ),
                        "404": _json(ERROR, "no such ticket"),
                        **ERRORS,
                    },
                }
            },
            "/api/tickets/{ticket_id}/messages": {
                "post": {
                    "summary": "A counsellor's reply, delivered to the person in their channel",
                    "description": (
                        "If Rasa cannot take it now, it is kept (delivered: false) and retried."
                    ),
                    "parameters": TICKET_ID,
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["text"],
                            "properties": {"text": text(4096)},
                        }
                    ),
                    "responses": {
                        "201": _json(MESSAGE, "stored"),
                        "404": _json(ERROR, "no such ticket"),
                        "409": _json(ERROR, "the ticket is closed"),
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
                        "404": _json(ERROR, "no such ticket"),
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
                                "idempotency_key": text(160),
                                "text": text(4096),
                                "at": TIME,
                                "urgent": {
                                    "type": "boolean",
                                    "description": "raises the ticket to urgent",
                                },
                            },
                        }
                    ),
                    "responses": {
                        "201": _json(MESSAGE),
                        "404": _json(ERROR, "no ticket with that key"),
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
                        }
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
