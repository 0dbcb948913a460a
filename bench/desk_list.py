"""The desk's ticket list with many tickets: what a console's poll costs.

Run from the project's root with its virtual environment::

    .venv/bin/python bench/desk_list.py [--tickets 3000] [--repeats 10]

A fresh SQLite desk (a temporary folder) gets N tickets of two messages each, a third of
them open, through the store as the assistant's requests would make them. The desk
then runs as it does in production (aiohttp on a loopback port, its delivery loop
included) and the bench signs in as a counsellor and times `GET /api/tickets` for
`status=open` (what the console polls every 3 s) and `status=all`: the median and the
slowest of the repeats, and the response's size.
"""
import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avrr.settings import DeskSettings  # noqa: E402
from bench.processes import free_ports  # noqa: E402
from desk.app import create_app  # noqa: E402
from desk.store import Store  # noqa: E402

PASSWORD = secrets.token_urlsafe(16)


def seeded(folder: Path, count: int) -> Store:
    store = Store(f"sqlite:///{folder / 'desk.db'}")
    store.add_counsellor("bench", PASSWORD, ["en"])
    at = datetime.now(timezone.utc)
    for n in range(count):
        ticket = store.create_ticket(
            {"idempotency_key": f"bench-{n:08d}", "conversation_id": f"web-bench-{n}",
             "channel": "socketio", "language": "en", "topic": "request_human",
             "urgency": ("urgent", "legal", "normal")[n % 3], "consent_at": at,
             "consent_language": "en"},
            [{"sender": "person", "text": "I want to talk to someone", "at": at},
             {"sender": "assistant", "text": "A counsellor will answer.", "at": at}])["ticket"]
        if n % 3:
            store.close(ticket["id"])
            store.mark_handed_back(ticket["id"])  # as the assistant confirmed it
    return store


async def timed(session: aiohttp.ClientSession, url: str, repeats: int) -> str:
    times, size = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        async with session.get(url) as reply:
            reply.raise_for_status()
            body = await reply.read()
        times.append(time.perf_counter() - start)
        size = len(body)
    return (f"median {statistics.median(times) * 1000:.0f} ms, slowest "
            f"{max(times) * 1000:.0f} ms, {size / 1024:.0f} KiB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=10)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        store = seeded(Path(folder), arguments.tickets)
        print(f"{arguments.tickets} tickets made in {time.perf_counter() - started:.0f} s")
        settings = DeskSettings(api_token=secrets.token_urlsafe(24), data_dir=Path(folder),
                                rasa_url="http://127.0.0.1:9")
        runner = web.AppRunner(create_app(settings, store))
        await runner.setup()
        [port] = free_ports(1)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                async with session.post(f"{base}/api/login", json={
                        "username": "bench", "password": PASSWORD}) as reply:
                    reply.raise_for_status()
                for status in ("open", "all"):
                    result = await timed(session, f"{base}/api/tickets?status={status}",
                                         arguments.repeats)
                    print(f"GET /api/tickets?status={status}: {result}")
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
