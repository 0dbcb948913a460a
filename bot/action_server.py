"""`python -m bot.action_server`: rasa-sdk's action server, plus the outbox's delivery.

A thread flushes the outbox to the counsellor desk every few seconds (actions/outbox.py),
so that a ticket kept while the desk was down reaches it once the desk is back, even if
nobody writes in the meantime. Arguments are rasa-sdk's (`--actions`, `--port`...).
"""

import threading

from rasa_sdk.__main__ import main as serve

from actions.outbox import deliver_forever


def main() -> None:
    threading.Thread(target=deliver_forever, name="outbox", daemon=True).start()
    serve()


if __name__ == "__main__":
    main()
