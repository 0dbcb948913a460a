"""`python -m bot.migrate`: create every store's tables, once, before the servers start.

Each store makes its own tables when its process starts (SQLAlchemy's `create_all`, the
desk's `upgrade()`, Rasa's SQLTrackerStore): right for one process, a race for several
starting together on one PostgreSQL database, where two `CREATE TABLE`s of one table can
both see it missing and one fails. `make cluster` runs this first, alone; the replicas
then find every table made and create nothing. With the settings of the parts
(`AVRR_DATABASE_URL`, `DESK_DATABASE_URL`, else the SQLite files of `AVRR_DATA_DIR`) it
creates:
- the Rasa server's: the tracker store's events, the channels' records;
- the action server's outbox and dead letters;
- the desk's tables (columns a newer desk added, included), its statistics cursor, and
  the first counsellor account, whose password it writes in `AVRR_DATA_DIR`
  (desk-first-login.txt) unless DESK_INITIAL_PASSWORD gives one.
Running it again changes nothing.
"""
import logging
import sys

from actions.outbox import Outbox
from avrr.db import engine
from avrr.logs import configure
from avrr.settings import DeskSettings, Settings, load
from bot import runtime
from bot.tracker_store import PrivacySQLTrackerStore
from desk.__main__ import first_account
from desk.store import Store

logger = logging.getLogger(__name__)


def migrate() -> None:
    """Every store's tables, on the databases the settings name."""
    PrivacySQLTrackerStore()
    runtime.records()
    Outbox(engine(load(Settings).store_url("outbox")), "", "")
    desk = load(DeskSettings)
    key = desk.insight_key
    first_account(desk, Store(desk.database, key.get_secret_value() if key else None))


def main() -> int:
    configure("migrate")
    migrate()
    logger.info("every store's tables are there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
