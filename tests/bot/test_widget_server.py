import re
import shutil
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from avrr.settings import WidgetSettings
from bot.widget_server import create_app

ROOT = Path(__file__).resolve().parents[2]
RASA = "http://127.0.0.1:5305"
SCRIPT = "/* the built widget */\n"


@pytest.fixture
def widget_dir(tmp_path: Path) -> Path:
    """A widget folder with the real demo page and a stand-in for the built script."""
    (tmp_path / "demo").mkdir()
    shutil.copy(ROOT / "widget" / "demo" / "index.html", tmp_path / "demo" / "index.html")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "avrr-widget.js").write_text(SCRIPT)
    return tmp_path


@asynccontextmanager
async def serve(widget_dir: Path, rasa_url: str = RASA):
    # construct(): the page must escape even a URL the settings would refuse.
    app = create_app(WidgetSettings.construct(rasa_url=rasa_url, widget_dir=widget_dir))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_the_demo_page_embeds_the_widget_pointed_at_the_rasa_server(widget_dir):
    async with serve(widget_dir) as client:
        reply = await client.get("/")
        page = await reply.text()

    assert reply.status == 200
    assert reply.content_type == "text/html"
    scripts = re.findall(r"<script[^>]*>", page)
    assert len(scripts) == 1
    assert 'src="/avrr-widget.js"' in scripts[0]
    assert f'data-server="{RASA}"' in scripts[0]
    assert "__RASA_URL__" not in page and "__NONCE__" not in page


async def test_the_demo_page_may_connect_to_the_rasa_server_only(widget_dir):
    async with serve(widget_dir) as client:
        reply = await client.get("/")
        page = await reply.text()

    header = reply.headers["Content-Security-Policy"]
    policy = dict(directive.strip().split(" ", 1) for directive in header.split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == f"{RASA} ws://127.0.0.1:5305"
    assert policy["frame-ancestors"] == "'none'"
    # The page's style and the widget's (which copies the script's nonce) carry this nonce.
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{16,})'", policy["style-src"]).group(1)
    assert page.count(f'nonce="{nonce}"') == 2
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_each_page_gets_its_own_nonce(widget_dir):
    async with serve(widget_dir) as client:
        policies = {(await client.get("/")).headers["Content-Security-Policy"] for _ in range(3)}

    assert len(policies) == 3


async def test_a_secure_rasa_server_is_reached_over_wss(widget_dir):
    async with serve(widget_dir, rasa_url="https://chat.example.org") as client:
        reply = await client.get("/")
        page = await reply.text()

    assert "connect-src https://chat.example.org wss://chat.example.org;" in (
        reply.headers["Content-Security-Policy"]
    )
    assert 'data-server="https://chat.example.org"' in page


async def test_the_rasa_url_is_html_escaped_in_the_page(widget_dir):
    async with serve(widget_dir, rasa_url='http://x"><script>alert(1)</script>') as client:
        page = await (await client.get("/")).text()

    assert "<script>alert(1)" not in page
    assert 'data-server="http://x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page


async def test_the_widget_script_is_served_for_revalidation(widget_dir):
    async with serve(widget_dir) as client:
        reply = await client.get("/avrr-widget.js")
        body = await reply.text()

    assert reply.status == 200
    assert body == SCRIPT
    assert reply.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert reply.headers["Cache-Control"] == "no-cache"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_an_unbuilt_widget_gets_503_with_the_build_command(widget_dir):
    (widget_dir / "dist" / "avrr-widget.js").unlink()
    async with serve(widget_dir) as client:
        reply = await client.get("/avrr-widget.js")
        body = await reply.text()

    assert reply.status == 503
    assert "node widget/build.mjs" in body
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_health(widget_dir):
    async with serve(widget_dir) as client:
        reply = await client.get("/health")
        body = await reply.json()

    assert reply.status == 200
    assert body == {"status": "ok"}
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_other_paths_are_not_found(widget_dir):
    async with serve(widget_dir) as client:
        for path in ("/demo/index.html", "/dist/avrr-widget.js", "/../bot/widget_server.py"):
            reply = await client.get(path)
            assert reply.status == 404, path
            assert reply.headers["X-Content-Type-Options"] == "nosniff"
