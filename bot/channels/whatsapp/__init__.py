"""The WhatsApp channel (Meta's WhatsApp Cloud API).

- `payload`: the webhook's signature check and parsing (pure).
- `render`: a Rasa bot message as Graph API messages (pure).
- `graph`: the Graph API client.
- `channel`: the webhook, the output channel and the 24-hour rule.
"""
