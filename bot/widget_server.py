"""`python -m bot.widget_server`: the web widget and its demo page, on loopback.

GET / is a partner page that embeds the widget with one script tag, pointed at the Rasa
server in WIDGET_RASA_URL; GET /avrr-widget.js is the widget that `node widget/build.mjs`
builds; GET /health answers {"status": "ok"}. WIDGET_PORT sets the port (8080).
"""
import html
import logging
import os
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from aiohttp import web

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_RASA_URL = "http://127.0.0.1:5005"
RASA_URL_PLACEHOLDER = "__RASA_URL__"
NONCE_PLACEHOLDER = "__NONCE__"
BUILD_COMMAND = "npm ci --prefix widget --no-audit --no-fund && node widget/build.mjs"
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class Settings:
    """Where the server listens, where the widget connects, and where its files are."""

    port: int = 8080
    rasa_url: str = DEFAULT_RASA_URL
    widget_dir: Path = ROOT / "widget"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        port = int(env.get("WIDGET_PORT", "8080"))
        if not 0 < port < 65536:
            raise ValueError(f"WIDGET_PORT must be a port number: {port}")
        return cls(port=port, rasa_url=rasa_origin(env.get("WIDGET_RASA_URL", DEFAULT_RASA_URL)))

    @property
    def script(self) -> Path:
        return self.widget_dir / "dist" / "avrr-widget.js"

    @property
    def demo_page(self) -> Path:
        return self.widget_dir / "demo" / "index.html"


def rasa_origin(url: str) -> str:
    """The origin (scheme://host[:port]) of the Rasa server's URL; ValueError if it is none."""
    parts = urlsplit(url.strip())
    if (
        parts.scheme not in ("http", "https")
        or not _HOST.match(parts.netloc)
        or parts.path.strip("/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"WIDGET_RASA_URL must be the Rasa server's origin, like {DEFAULT_RASA_URL}: {url!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(rasa_url: str, nonce: str) -> str:
    """The demo page may load its own script and talk to the Rasa server, nothing else."""
    websocket = "ws" + rasa_url[len("http"):]  # http -> ws, https -> wss
    return (
        f"default-src 'none'; script-src 'self'; style-src 'nonce-{nonce}'; img-src data:; "
        f"connect-src {rasa_url} {websocket}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


SETTINGS = web.AppKey("settings", Settings)
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


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[DEMO_PAGE] = settings.demo_page.read_text(encoding="utf-8")
    app.on_response_prepare.append(secure)
    app.router.add_get("/", demo)
    app.router.add_get("/avrr-widget.js", widget_script)
    app.router.add_get("/health", health)
    return app


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s widget: %(message)s")
    try:
        settings = Settings.from_env()
    except ValueError as invalid:
        logger.error("%s", invalid)
        return 2
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
