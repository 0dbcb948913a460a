"""Sanic 21.12 (Rasa's and rasa-sdk's server) takes any Content-Length for a number.

A negative one ("Content-Length: -1") sets the bytes left to read below zero: Sanic then
reads the connection for ever, at full CPU, answering nothing else and ignoring SIGTERM,
from a single request without any credentials. One that is not a number ("abc") is a
500 with a traceback. Both are refused here before any route, and the connection is
closed without reading a body: a 400, or the 4xx a request middleware answers first
(Sanic runs them for an error too: the action server's 401 without its token).
"""
from sanic.exceptions import InvalidUsage
from sanic.http import Http
from sanic.server.protocols import http_protocol


class CheckedHttp(Http):
    """Sanic's HTTP/1.1 handler, refusing a Content-Length that is not a size.

    A subclass, not a replacement of the method: Sanic recompiles Http's own methods from
    their source when a server starts ("touch-up"); the parent's stays Sanic's."""

    __slots__ = ()

    async def http1_request_header(self) -> None:
        try:
            await super().http1_request_header()
        except ValueError as failure:  # int() of the header
            self.request_body = None
            raise InvalidUsage("Content-Length must be a number of bytes") from failure
        if self.request_bytes_left is not None and self.request_bytes_left < 0:
            self.request_body = None
            self.request_bytes_left = self.request_bytes = 0
            raise InvalidUsage("Content-Length must be a number of bytes")


def refuse_bad_lengths() -> None:
    """Mends every Sanic server of this process (see the module docstring)."""
    http_protocol.Http = CheckedHttp  # type: ignore[misc]
