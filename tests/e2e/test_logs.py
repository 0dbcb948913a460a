"""No secret and no personal data in any log at INFO or above, from any process or library:
a whole conversation with a canary name, phone number and text through every channel,
including typed "/..." text, a handoff, and a failing action; then every log line the
running assistant wrote is searched for them and for every configured secret."""
import uuid

import requests

from tests.assistant import ACTION_TOKEN, CHANNEL_ENV, DESK_TOKEN, RASA_TOKEN
from tests.rawhttp import status_of_raw


def test_no_log_line_holds_a_canary_or_a_secret(assistant, web_chat, telegram_api, graph_api,
                                                desk):
    marker = uuid.uuid4().hex[:8]
    name = f"Zorana{marker}"
    phone = "3670" + str(uuid.uuid4().int)[:7]
    words = f"my name is {name} and my phone is {phone}"
    before = assistant.log.read_text(errors="replace")

    # REST, with a typed command and a consent to a counsellor (the transcript goes to
    # the desk).
    sender = f"canary-{marker}"
    assistant.say(sender, words)
    assistant.say(sender, f'/inform{{"elig_situation":"{name}"}}')
    assistant.say(sender, "I want to talk to a counsellor")
    assistant.say(sender, "/affirm")
    assistant.say(sender, f"{name} again, {phone}")

    # The web chat.
    chat = web_chat()
    chat.say_and_wait(words)

    # Telegram.
    update = {
        "update_id": int(phone[-9:]),
        "message": {"message_id": 1, "date": 1700000000, "text": words,
                    "from": {"id": int(phone[-9:]), "is_bot": False, "first_name": name},
                    "chat": {"id": int(phone[-9:]), "first_name": name, "type": "private"}},
    }
    reply = requests.post(f"{assistant.url}/webhooks/telegram/webhook", json=update, timeout=30,
                          headers={"X-Telegram-Bot-Api-Secret-Token":
                                   CHANNEL_ENV["TELEGRAM_WEBHOOK_SECRET"]})
    assert reply.status_code == 200
    assistant.drained(f"telegram:{int(phone[-9:])}")

    # WhatsApp, the person's number as their id.
    from tests.fakes.graph_api import encode, message_payload, signed

    body = encode(message_payload(phone, words))
    reply = requests.post(
        f"{assistant.url}/webhooks/whatsapp/webhook", data=body, timeout=30,
        headers={"Content-Type": "application/json",
                 "X-Hub-Signature-256": signed(body, CHANNEL_ENV["WHATSAPP_APP_SECRET"])})
    assert reply.status_code == 200
    assistant.drained(f"whatsapp:{phone}")

    # An action that fails on what it is given: its 500 quotes nothing.
    call = {"next_action": "action_handoff_relay", "sender_id": sender, "version": "3.6.21",
            "domain": {}, "tracker": {"sender_id": sender, "slots": {"handoff_ticket": "k"},
                                      "latest_message": {"text": words}, "events": [],
                                      "paused": False, "followup_action": None,
                                      "active_loop": {}, "latest_action_name": None}}
    failed = requests.post(f"{assistant.action_url}/webhook", json=call, timeout=30,
                           headers={"Authorization": f"Bearer {ACTION_TOKEN}"})
    assert failed.status_code == 500
    assert name not in failed.text and phone not in failed.text

    # Header bytes no client sends, with a canary: answered below 500 (400 from the
    # stricter parsers), the bytes not logged.
    for url in (assistant.url, assistant.action_url, assistant.desk_url, assistant.widget_url):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        raw = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: session={name}\x01{phone}\r\n"
               f"X-Token: {phone}\xab\r\n\r\n").encode("latin-1")
        assert status_of_raw("127.0.0.1", port, raw) < 500, url

    written = assistant.log.read_text(errors="replace")[len(before):]
    assert "Traceback" not in written
    secrets = [RASA_TOKEN, ACTION_TOKEN, DESK_TOKEN, *CHANNEL_ENV.values(),
               (assistant.data_dir / "socket_session_secret").read_text().strip()]
    secrets = [s for s in secrets if len(s) >= 8 and not s.startswith("-100")]
    for needle in [name, phone, marker, *secrets]:
        assert needle not in written, needle
    # The whole log of the run so far, too.
    everything = assistant.log.read_text(errors="replace")
    for needle in secrets:
        assert needle not in everything, needle

