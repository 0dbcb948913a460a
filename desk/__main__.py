"""`python -m desk`: run the counsellor desk.

`python -m desk add-counsellor NAME --languages en,ar [--role admin]` adds an account, and
`python -m desk reset-password NAME` gives one a temporary password (for the administrator
who forgot theirs): the password from DESK_NEW_PASSWORD, or asked for. Everything else is
done by an administrator in the console. `python -m desk export-labels` (make
export-labels) writes the labelled unanswered questions as NLU data (desk/labels.py)."""

import argparse
import getpass
import logging
import secrets
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

from avrr.content import Content
from avrr.logs import configure
from avrr.settings import ROOT, DeskSettings, load
from avrr.vocabulary import CODES
from desk.app import create_app
from desk.labels import FIELD, export, write_private
from desk.store import ROLES, Conflict, NotFound, Store

logger = logging.getLogger("desk")
FIRST_USER = "counsellor"


def first_account(settings: DeskSettings, store: Store) -> None:
    """With no account yet, create one, its password in a file only the owner can read."""
    if store.has_counsellors():
        return
    given = settings.initial_password
    password = given.get_secret_value() if given else secrets.token_urlsafe(12)
    # A generated password sits in a file: it works once, then its owner chooses one.
    store.add_counsellor(FIRST_USER, password, CODES, "admin", temporary=given is None,
                         actor="command-line")
    path = settings.data_dir / "desk-first-login.txt"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    write_private(path, f"username: {FIRST_USER}\npassword: {password}\n")
    logger.info(
        "created the first counsellor account '%s'; its password is in %s", FIRST_USER, path
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m desk")
    commands = parser.add_subparsers(dest="command")
    add = commands.add_parser("add-counsellor", help="add a counsellor account")
    add.add_argument("username")
    add.add_argument(
        "--languages", default=",".join(CODES), help="codes they answer in, comma-separated"
    )
    add.add_argument("--role", choices=ROLES, default="counsellor")
    reset = commands.add_parser("reset-password", help="a temporary password for an account")
    reset.add_argument("username")
    labels = commands.add_parser(
        "export-labels", help="labelled questions as NLU data: <data>/<lang>/field.yml")
    labels.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    arguments = parser.parse_args()
    configure("desk")
    settings = load(DeskSettings)
    key = settings.insight_key
    # The statistics count the days of the office's time zone (content/settings.yml).
    zone = ZoneInfo(Content(settings.content_dir).office_hours().zone)
    store = Store(settings.database, key.get_secret_value() if key else None, zone)
    if arguments.command == "export-labels":
        for language, count in export(store.labelled(), arguments.data).items():
            print(f"{arguments.data / language / FIELD}: {count} examples")
        return 0
    if arguments.command is not None:
        given = settings.new_password
        password = given.get_secret_value() if given else getpass.getpass("Password: ")
        if len(password) < 10:
            print("The password needs at least 10 characters.", file=sys.stderr)
            return 2
        languages = getattr(arguments, "languages", "").split(",")
        if arguments.command == "add-counsellor" and not set(languages) <= set(CODES):
            print(f"Languages are among {','.join(CODES)}.", file=sys.stderr)
            return 2
        try:
            if arguments.command == "add-counsellor":
                store.add_counsellor(arguments.username, password,
                                     languages, arguments.role,
                                     actor="command-line")
                print(f"added {arguments.username}")
            else:
                store.reset_password(arguments.username, password, "command-line")
                print(f"{arguments.username} has a temporary password, to change at sign-in")
        except (Conflict, NotFound, ValueError) as refused:
            print(refused, file=sys.stderr)
            return 1
        return 0
    first_account(settings, store)
    web.run_app(
        create_app(settings, store),
        host=settings.host,
        port=settings.port,
        print=lambda _: logger.info("listening on http://%s:%d", settings.host, settings.port),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
