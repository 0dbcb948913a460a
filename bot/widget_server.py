"""`python -m bot.widget_server`: the web widget and its demo page, on loopback.

GET / is a partner page that embeds the widget with one script tag, pointed at the Rasa
server in WIDGET_RASA_URL; GET /avrr-widget.js is the widget that `node widget/build.mjs`
builds; GET /health answers {"status": "ok"}. WIDGET_PORT sets the port (8080).
"""
import html
import logging
import secrets
import sys
from typing import Any

from aiohttp import web

from avrr.logs import configure
from avrr.settings import LOOPBACK, WidgetSettings, load

logger = logging.getLogger(__name__)

HOST = LOOPBACK
RASA_URL_PLACEHOLDER = "__RASA_URL__"
NONCE_PLACEHOLDER = "__NONCE__"
BUILD_COMMAND = "npm ci --prefix widget --no-audit --no-fund && node widget/build.mjs"


def content_security_policy(rasa_url: str, nonce: str) -> str:
    """The demo page may load its own script and talk to the Rasa server, nothing else."""
    websocket = "ws" + rasa_url[len("http"):]  # http -> ws, https -> wss
    return (
        f"default-src 'none'; script-src 'self'; style-src 'nonce-{nonce}'; img-src data:; "
        f"connect-src {rasa_url} {websocket}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


SETTINGS = web.AppKey("settings", WidgetSettings)
DEMO_PAGE = web.AppKey("demo_page", str)


async def demo(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    nonce = secrets.token_urlsafe(16)
    page = (
        request.app[DEMO_PAGE]
        .replace(RASA_URL_PLACEHOLDER, html.escape(settings.rasa_url, quote=True))
        .replace(NONCE_PLACEHOLDER, nonce)
    )
    return web.Response(
        text=page,
        content_type="text/html",
        headers={
            "Content-Security-Policy": content_security_policy(settings.rasa_url, nonce),
            "Cache-Control": "no-store",
        },
    )


async def widget_script(request: web.Request) -> web.StreamResponse:
    script = request.app[SETTINGS].script
    if not script.is_file():
        logger.warning("%s is missing: the widget is not built", script)
        return web.Response(
            status=503,
            text=f"The widget is not built. Run: {BUILD_COMMAND}\n",
            headers={"Cache-Control": "no-store"},
        )
    # no-cache: the browser revalidates (a 304 when unchanged), so a new build shows at once.
    return web.FileResponse(
        script,
        headers={
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": "no-cache",
        },
    )


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def secure(_: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"


# The page takes no bodies at all: anything announcing more is refused before it is read.
MAX_BODY_BYTES = 1024


@web.middleware
async def refuse_large(request: web.Request, handler: Any) -> web.StreamResponse:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return web.json_response({"error": "the body is too large"}, status=413)
    return await handler(request)


def create_app(settings: WidgetSettings) -> web.Application:
    app = web.Application(middlewares=[refuse_large], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[DEMO_PAGE] = settings.demo_page.read_text(encoding="utf-8")
    app.on_response_prepare.append(secure)
    app.router.add_get("/", demo)
    app.router.add_get("/avrr-widget.js", widget_script)
    app.router.add_get("/health", health)
    return app


def main() -> int:
    configure("widget")
    settings = load(WidgetSettings)
    if not settings.script.is_file():
        logger.warning("the widget is not built; run: %s", BUILD_COMMAND)
    # Requests are logged without the client's address.
    web.run_app(
        create_app(settings),
        host=HOST,
        port=settings.port,
        access_log_format='"%r" %s %b %Tf',
        print=lambda _: logger.info(
            "demo page on http://%s:%d/, talking to %s", HOST, settings.port, settings.rasa_url
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
