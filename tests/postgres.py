"""A PostgreSQL server of the tests' own (Debian's package), for the stores' integration
tests (`make integration`): started once, on loopback, with a new database per test."""

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import psycopg2
import pytest

from tests.ports import free_port


def _as_postgres(command):
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + command


@pytest.fixture(scope="session")
def postgres_server():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed: apt-get install postgresql (see the README)"
    bin_dir = os.path.dirname(found[-1])
    port = free_port()
    folder = tempfile.mkdtemp(prefix="avrr-pg-")
    os.chmod(folder, 0o777)  # noqa: S103 - the postgres user writes here; a test folder
    data = os.path.join(folder, "data")
    subprocess.run(
        _as_postgres([f"{bin_dir}/initdb", "-D", data, "-U", "desk", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres(
            [
                f"{bin_dir}/pg_ctl",
                "-D",
                data,
                "-l",
                os.path.join(folder, "log"),
                "-w",
                "start",
                "-o",
                f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg2.connect(
                    host="127.0.0.1", port=port, user="desk", dbname="postgres"
                ).close()
                break
            except psycopg2.OperationalError:
                assert time.monotonic() < deadline, "PostgreSQL did not start"
                time.sleep(0.2)
        yield f"postgresql://desk@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A new, empty database for one test."""
    name = f"desk_{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(f"{postgres_server}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')  # noqa: S608 - a name we made
    connection.close()
    return f"{postgres_server}/{name}"
