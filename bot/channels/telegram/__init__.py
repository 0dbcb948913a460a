"""The Telegram channel (python-telegram-bot): webhook, update mapping, sender, polling.

- `updates`: what an update asks of the assistant, and how a reply looks (pure).
- `sender`: the Bot, paced by PTB's AIORateLimiter, and what each Bot API error means.
- `channel`: the webhook at `POST /webhooks/telegram/webhook` and the output channel.
- `polling`: `python -m bot.channels.telegram.polling`, for a machine without a public
  address.
"""
