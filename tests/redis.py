"""A Redis server of the tests' own (Debian's redis-server), for the integration tests of
what several Rasa replicas share (`make integration`): started once, on loopback, with
nothing kept on disk, and emptied before each test."""

import os
import shutil
import subprocess
import tempfile
import time

import pytest
import redis

from tests.ports import free_port


@pytest.fixture(scope="session")
def redis_server():
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    assert os.path.exists(binary), (
        "Redis is not installed: apt-get install redis-server (see the README)"
    )
    port = free_port()
    folder = tempfile.mkdtemp(prefix="avrr-redis-")
    server = subprocess.Popen(  # noqa: S603 - Debian's server, our arguments
        [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", folder,
            "--save", "", "--appendonly", "no", "--logfile", f"{folder}/log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert server.poll() is None, open(f"{folder}/log").read()
                assert time.monotonic() < deadline, "Redis did not start"
                time.sleep(0.1)
        client.close()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server):
    """The test Redis, empty: no keys, and no subscriber left by a test before."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.client_kill_filter(_type="pubsub")
    client.close()
    return redis_server
