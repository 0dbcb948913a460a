"""The desk's command line: an account added, and a forgotten password reset."""
import os
import subprocess
import sys

from desk.store import Store


def desk_command(tmp_path, *arguments, password="from-the-environment"):  # noqa: S107
    env = dict(os.environ, AVRR_DATA_DIR=str(tmp_path), DESK_NEW_PASSWORD=password)
    env.pop("DESK_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "desk", *arguments], env=env,
                          capture_output=True, text=True, timeout=60)


def test_an_operator_adds_an_administrator_and_resets_a_forgotten_password(tmp_path):
    added = desk_command(tmp_path, "add-counsellor", "zoe", "--languages", "hu,en")
    assert (added.returncode, added.stdout) == (0, "added zoe\n")
    taken = desk_command(tmp_path, "add-counsellor", "zoe")
    assert (taken.returncode, taken.stderr) == (1, "the username 'zoe' is taken\n")
    assert desk_command(tmp_path, "reset-password", "zoe", password="short").returncode == 2
    reset = desk_command(tmp_path, "reset-password", "zoe", password="a-new-temporary")
    assert reset.returncode == 0
    assert desk_command(tmp_path, "reset-password", "nobody").returncode == 1

    store = Store(f"sqlite:///{tmp_path / 'desk.db'}")
    [zoe] = store.counsellors()
    assert (zoe["role"], zoe["languages"], zoe["must_change_password"]) == (
        "admin", ["hu", "en"], True)  # the first account is an administrator
    assert store.check_password("zoe", "a-new-temporary") is not None
    assert [e["action"] for e in store.account_events()] == ["password reset", "account added"]


def test_a_generated_first_password_works_once_then_its_owner_chooses_one(tmp_path):
    from avrr.settings import DeskSettings
    from desk.__main__ import FIRST_USER, first_account

    settings = DeskSettings(api_token="unit-test-token-0123456789", data_dir=tmp_path)
    store = Store(settings.database)
    left = tmp_path / "desk-first-login.txt"  # an older one, readable by all
    left.write_text("username: someone\n")
    left.chmod(0o644)
    first_account(settings, store)
    assert left.stat().st_mode & 0o777 == 0o600
    written = left.read_text().splitlines()
    password = written[1].removeprefix("password: ")
    assert written[0] == f"username: {FIRST_USER}"
    [account] = store.counsellors()
    assert (account["role"], account["must_change_password"]) == ("admin", True)
    assert store.check_password(FIRST_USER, password) is not None
    first_account(settings, store)  # a second start adds nobody
    assert len(store.counsellors()) == 1
