"""The desk's settings, from the environment only."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    database_url: str
    api_token: str
    rasa_url: str
    rasa_token: Optional[str]
    data_dir: Path
    cookie_secure: bool
    telegram_token: Optional[str]
    telegram_chat_id: Optional[str]
    telegram_api: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        token = env.get("DESK_API_TOKEN", "")
        if len(token) < 16:
            raise SystemExit(
                "DESK_API_TOKEN must be set, at least 16 characters (make run sets one)"
            )
        data_dir = Path(env.get("AVRR_DATA_DIR", ROOT / "var"))
        return cls(
            host=env.get("DESK_HOST", "127.0.0.1"),
            port=int(env.get("DESK_PORT", "8000")),
            database_url=env.get("DESK_DATABASE_URL") or f"sqlite:///{data_dir / 'desk.db'}",
            api_token=token,
            rasa_url=env.get("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
            rasa_token=env.get("RASA_API_TOKEN") or None,
            data_dir=data_dir,
            cookie_secure=env.get("DESK_COOKIE_SECURE", "") == "1",
            telegram_token=env.get("TELEGRAM_BOT_TOKEN") or None,
            telegram_chat_id=env.get("DESK_TELEGRAM_CHAT_ID") or None,
            telegram_api=env.get("TELEGRAM_API_BASE_URL", "https://api.telegram.org").rstrip("/"),
        )
