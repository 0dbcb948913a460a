"""A fake API's aiohttp app on a free loopback port, served from a thread with its own
event loop: reachable from sync test code and from the assistant's processes alike."""
import asyncio
import socket
import threading
from typing import Callable, Optional

from aiohttp import web


class LoopbackServer:
    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._thread: Optional[threading.Thread] = None

    def start(self, add_routes: Callable[[web.Application], None]) -> str:
        """Serve the routes `add_routes` adds; returns http://127.0.0.1:<port>."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        url = []

        async def serve() -> None:
            app = web.Application()
            add_routes(app)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            await web.SockSite(self._runner, listener).start()
            url.append(f"http://127.0.0.1:{listener.getsockname()[1]}")
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{self.name} did not start")
        return url[0]

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shut() -> None:
            await self._runner.cleanup()
            # A request still waiting, such as a long poll.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None
