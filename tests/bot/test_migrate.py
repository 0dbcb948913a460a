"""`python -m bot.migrate` makes every store's tables once, before several servers start
on one PostgreSQL database (tests/postgres.py); run again, it changes nothing."""
import stat

import psycopg2
import pytest
import sqlalchemy as sa

from bot import runtime
from bot.migrate import migrate

pytestmark = pytest.mark.integration

RASA_AND_ACTION_TABLES = {"events", "processed", "outgoing", "sent", "refused", "last_inbound",
                          "held_notice", "languages", "outbox", "dead_letters"}


def tables(url):
    return set(sa.inspect(sa.create_engine(url)).get_table_names())


@pytest.fixture
def databases(postgres_url, postgres_server, tmp_path, monkeypatch):
    """An empty database for the Rasa and action servers, another for the desk."""
    desk_url = f"{postgres_server}/desk_of_{postgres_url.rsplit('/', 1)[1]}"
    connection = psycopg2.connect(f"{postgres_server}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{desk_url.rsplit("/", 1)[1]}"')  # noqa: S608
    connection.close()
    monkeypatch.setenv("AVRR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AVRR_DATABASE_URL", postgres_url)
    monkeypatch.setenv("DESK_DATABASE_URL", desk_url)
    monkeypatch.setenv("DESK_API_TOKEN", "desk-test-token-0123456789")
    for name in ("AVRR_REDIS_URL", "DESK_INITIAL_PASSWORD", "DESK_INSIGHT_KEY"):
        monkeypatch.delenv(name, raising=False)
    runtime.reset()
    yield postgres_url, desk_url
    runtime.reset()


def test_every_store_has_its_tables_and_the_desk_its_first_account(databases, tmp_path):
    rasa_url, desk_url = databases
    assert tables(rasa_url) == set() and tables(desk_url) == set()

    migrate()

    assert tables(rasa_url) == RASA_AND_ACTION_TABLES
    assert {"tickets", "messages", "counsellors", "leases", "insight_cursor"} <= tables(desk_url)
    with sa.create_engine(desk_url).connect() as db:
        accounts = db.execute(sa.text("SELECT username, role FROM counsellors")).fetchall()
    assert [tuple(row) for row in accounts] == [("counsellor", "admin")]
    login = tmp_path / "desk-first-login.txt"
    assert login.read_text().startswith("username: counsellor\npassword: ")
    assert stat.S_IMODE(login.stat().st_mode) == 0o600


def test_run_again_it_changes_nothing(databases, tmp_path):
    rasa_url, desk_url = databases
    migrate()
    login = (tmp_path / "desk-first-login.txt").read_text()

    migrate()

    assert tables(rasa_url) == RASA_AND_ACTION_TABLES
    with sa.create_engine(desk_url).connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM counsellors")).scalar() == 1
        assert db.execute(sa.text("SELECT count(*) FROM insight_cursor")).scalar() == 1
    assert (tmp_path / "desk-first-login.txt").read_text() == login
