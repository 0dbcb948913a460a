"""Every setting of every process, from one definition: the environment and `.env`.

Each process builds its own settings object once, at start-up, with `load(<class>)`:
the launcher (`LaunchSettings`), the Rasa server and its channels (`RasaSettings`,
`TelegramSettings`, `WhatsAppSettings`), the action server (`ActionServerSettings`), the
desk (`DeskSettings`) and the widget's page (`WidgetSettings`). Values come from the
environment, then from `.env` at the repository's root (never committed; see
`.env.example`), then from the defaults here. An empty value counts as unset. Every
storage location is derived from the data folder unless a database URL is given. No
other module reads the environment.
"""
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Type, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseSettings, Field, SecretStr, ValidationError, root_validator, validator
from pydantic.env_settings import SettingsError as EnvSettingsError

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
MIN_SECRET_CHARS = 16
REDIS_SCHEMES = ("redis", "rediss", "unix")

S = TypeVar("S", bound="Settings")
LIST_FIELDS = ("widget_origins",)


def _origin_list(value: Any) -> List[str]:
    if isinstance(value, str):
        return [origin.strip() for origin in value.split(",") if origin.strip()]
    return list(value)


def _some_origins(value: Any) -> List[str]:
    """The origins given, refused when there are none (only commas or spaces): the web
    chat's server (python-engineio) reads an empty list as "accept every origin"."""
    origins = _origin_list(value)
    if not origins:
        raise ValueError("names no origin: give at least one (or * for every origin)")
    return origins


class SettingsError(SystemExit):
    """The settings are not usable; the message says which and why."""


class Settings(BaseSettings):
    """What every process shares: where data and content live, and how long data is kept."""

    data_dir: Path = Field(ROOT / "var", env="AVRR_DATA_DIR")
    content_dir: Path = Field(ROOT / "content", env="AVRR_CONTENT_DIR")
    # One database for the Rasa server's and the action server's stores (PostgreSQL on
    # several machines); unset: SQLite files in the data folder.
    database_url: Optional[str] = Field(None, env="AVRR_DATABASE_URL")
    retention_days: int = Field(90, env="AVRR_RETENTION_DAYS", ge=1, le=3650)

    class Config:
        env_file = str(ROOT / ".env")
        env_file_encoding = "utf-8"
        extra = "ignore"
        allow_mutation = False

        @classmethod
        def parse_env_var(cls, field_name: str, raw: str) -> Any:
            """Lists are written comma-separated in the environment, not as JSON."""
            if not raw.strip():
                return raw  # unset: see _empty_is_unset
            return _origin_list(raw) if field_name in LIST_FIELDS else cls.json_loads(raw)

    @root_validator(pre=True)
    def _empty_is_unset(cls, values: Dict[str, Any]) -> Dict[str, Any]:  # noqa: N805
        return {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}

    def store_url(self, name: str) -> str:
        """The database of the store `name`: the shared one, or `<data_dir>/<name>.db`."""
        return self.database_url or f"sqlite:///{self.data_dir / name}.db"


def _secret(value: Optional[SecretStr], name: str) -> Optional[SecretStr]:
    if value is not None and len(value.get_secret_value()) < MIN_SECRET_CHARS:
        raise ValueError(f"{name} must be at least {MIN_SECRET_CHARS} characters")
    return value


def redacted(url: str) -> str:
    """`url` fit for a log: a password in it, before the host or in the query, hidden."""
    parts = urlsplit(url)
    if parts.password is not None:
        url = url.replace(f":{parts.password}@", ":***@", 1)
    if "password" in parts.query.lower():
        url = url.replace(f"?{parts.query}", "?***", 1)
    return url


class RasaSettings(Settings):
    """The Rasa server: its HTTP API, channels, tracker store and channel records."""

    api_token: Optional[SecretStr] = Field(None, env="RASA_API_TOKEN")
    rest_channel_token: Optional[SecretStr] = Field(None, env="REST_CHANNEL_TOKEN")
    socket_session_secret: Optional[SecretStr] = Field(None, env="SOCKET_SESSION_SECRET")
    widget_origins: List[str] = Field(
        ["http://127.0.0.1:8080", "http://localhost:8080"], env="WIDGET_ORIGINS"
    )
    # Messages a minute on the REST and web chat channels, per sender and per address.
    rate_per_sender: int = Field(20, env="RATE_LIMIT_PER_SENDER", ge=1)
    rate_per_address: int = Field(120, env="RATE_LIMIT_PER_ADDRESS", ge=1)
    # Web chat sockets open at once per client address, on each replica: a shelter's
    # residents may share one address; a stranger's thousands of idle sockets may not.
    sockets_per_address: int = Field(200, env="SOCKETS_PER_ADDRESS", ge=1)
    # Reverse proxies in front of Rasa (nginx: 1): the client's address is then taken from
    # their X-Forwarded-For, so that the limits per address apply to the person.
    proxies_count: int = Field(0, env="AVRR_PROXIES_COUNT", ge=0, le=5)
    # Several Rasa replicas share Redis: the lock store (one message of a conversation at a
    # time, whichever replica has it), socket.io's rooms and the rate limits. A secret: it
    # may hold a password.
    redis_url: Optional[SecretStr] = Field(None, env="AVRR_REDIS_URL")
    # "memory" keeps Rasa's in-process lock store even with Redis (a test's control case).
    lock_store: Optional[Literal["memory", "redis"]] = Field(None, env="AVRR_LOCK_STORE")

    _origins = validator("widget_origins", pre=True, allow_reuse=True)(_some_origins)

    @validator("api_token", "rest_channel_token", "socket_session_secret")
    def _long_enough(cls, value: Optional[SecretStr], field: Any) -> Optional[SecretStr]:  # noqa: N805
        return _secret(value, field.field_info.extra.get("env", field.name))

    @validator("redis_url")
    def _a_redis_url(cls, value: Optional[SecretStr]) -> Optional[SecretStr]:  # noqa: N805
        if value is not None and urlsplit(value.get_secret_value()).scheme not in REDIS_SCHEMES:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @root_validator(skip_on_failure=True)
    def _replicas_share_what_they_must(cls, values: Dict[str, Any]) -> Dict[str, Any]:  # noqa: N805
        if values.get("redis_url") is None:
            if values.get("lock_store") == "redis":
                raise ValueError("AVRR_LOCK_STORE=redis needs AVRR_REDIS_URL")
        elif values.get("socket_session_secret") is None:
            # Each replica would make up its own key: a web chat could not resume on another.
            raise ValueError("AVRR_REDIS_URL (several replicas) needs SOCKET_SESSION_SECRET")
        return values

    @property
    def redis_lock_store(self) -> bool:
        """Whether the lock store is on Redis: when AVRR_REDIS_URL is set, unless told not."""
        return self.redis_url is not None and self.lock_store != "memory"

    @property
    def tracker_url(self) -> str:
        return self.store_url("conversations")

    @property
    def channels_url(self) -> str:
        return self.store_url("channels")


class TelegramSettings(Settings):
    """The Telegram channel (docs/telegram.md): started when the bot token is set."""

    bot_token: SecretStr = Field(..., env="TELEGRAM_BOT_TOKEN")
    webhook_secret: SecretStr = Field(..., env="TELEGRAM_WEBHOOK_SECRET")
    api_base_url: str = Field("https://api.telegram.org", env="TELEGRAM_API_BASE_URL")
    # Polling mode forwards updates to this Rasa server.
    rasa_url: str = Field(f"http://{LOOPBACK}:5005", env="RASA_URL")

    @validator("webhook_secret")
    def _telegram_accepts_it(cls, value: SecretStr) -> SecretStr:  # noqa: N805
        secret = value.get_secret_value()
        # Telegram accepts 1 to 256 of these; fewer than our other secrets' minimum could
        # be guessed, and whoever has it can write as anyone on the webhook.
        if not (MIN_SECRET_CHARS <= len(secret) <= 256 and all(
                c.isascii() and (c.isalnum() or c in "_-") for c in secret)):
            raise ValueError(
                f"TELEGRAM_WEBHOOK_SECRET must be {MIN_SECRET_CHARS}-256 letters, digits, _ "
                "or - (what Telegram's setWebhook accepts as secret_token)"
            )
        return value

    @validator("api_base_url", "rasa_url")
    def _no_trailing_slash(cls, value: str) -> str:  # noqa: N805
        return value.rstrip("/")


class WhatsAppSettings(Settings):
    """The WhatsApp Cloud API channel (docs/whatsapp.md): started when the token is set."""

    access_token: SecretStr = Field(..., env="WHATSAPP_ACCESS_TOKEN")
    app_secret: SecretStr = Field(..., env="WHATSAPP_APP_SECRET")
    verify_token: SecretStr = Field(..., env="WHATSAPP_VERIFY_TOKEN")
    phone_number_id: str = Field(..., env="WHATSAPP_PHONE_NUMBER_ID", regex=r"^[0-9]{1,32}$")
    api_base_url: str = Field("https://graph.facebook.com/v21.0", env="WHATSAPP_API_BASE_URL")
    reply_template: str = Field("counsellor_reply", env="WHATSAPP_REPLY_TEMPLATE")

    @validator("api_base_url")
    def _no_trailing_slash(cls, value: str) -> str:  # noqa: N805
        return value.rstrip("/")


class ActionServerSettings(Settings):
    """The action server: where it listens, its shared secret, and the desk it writes to."""

    host: str = Field(LOOPBACK, env="ACTION_HOST")
    port: int = Field(5055, env="ACTION_PORT", ge=1, le=65535)
    token: SecretStr = Field(..., env="ACTION_SERVER_TOKEN")
    desk_url: str = Field(f"http://{LOOPBACK}:8000", env="DESK_URL")
    desk_api_token: SecretStr = Field(..., env="DESK_API_TOKEN")
    # To tell a person, in their conversation, that their request was refused.
    rasa_url: str = Field(f"http://{LOOPBACK}:5005", env="RASA_URL")
    rasa_api_token: Optional[SecretStr] = Field(None, env="RASA_API_TOKEN")

    @validator("token", "desk_api_token")
    def _long_enough(cls, value: SecretStr, field: Any) -> SecretStr:  # noqa: N805
        return _secret(value, field.field_info.extra.get("env", field.name))

    @validator("desk_url", "rasa_url")
    def _no_trailing_slash(cls, value: str) -> str:  # noqa: N805
        return value.rstrip("/")

    @property
    def outbox_url(self) -> str:
        return self.store_url("outbox")


class DeskSettings(Settings):
    """The counsellor desk."""

    host: str = Field(LOOPBACK, env="DESK_HOST")
    port: int = Field(8000, env="DESK_PORT", ge=1, le=65535)
    desk_database_url: Optional[str] = Field(None, env="DESK_DATABASE_URL")
    api_token: SecretStr = Field(..., env="DESK_API_TOKEN")
    rasa_url: str = Field(f"http://{LOOPBACK}:5005", env="RASA_URL")
    rasa_api_token: Optional[SecretStr] = Field(None, env="RASA_API_TOKEN")
    cookie_secure: bool = Field(False, env="DESK_COOKIE_SECURE")
    # A ticket's claim lapses when its holder has had no console open for this long
    # (the browser closed without signing out); 0: not so (signing out of one's last
    # session still releases one's tickets).
    claim_idle_minutes: int = Field(30, env="DESK_CLAIM_IDLE_MINUTES", ge=0, le=1440)
    # Reverse proxies in front of the desk (1 behind nginx): the sign-in limits per
    # address read the client's address from X-Forwarded-For, not the proxy's.
    proxies_count: int = Field(0, env="AVRR_PROXIES_COUNT", ge=0, le=5)
    initial_password: Optional[SecretStr] = Field(None, env="DESK_INITIAL_PASSWORD")
    # `python -m desk add-counsellor`: the new account's password (else asked for).
    new_password: Optional[SecretStr] = Field(None, env="DESK_NEW_PASSWORD")
    telegram_bot_token: Optional[SecretStr] = Field(None, env="TELEGRAM_BOT_TOKEN")
    telegram_chat_id: Optional[str] = Field(None, env="DESK_TELEGRAM_CHAT_ID")
    telegram_api_base_url: str = Field("https://api.telegram.org", env="TELEGRAM_API_BASE_URL")
    # Keys the hashes that link a question in the statistics' inbox to its conversation
    # (so that a deletion request finds it): kept out of the database. Unset: a key kept
    # in the desk's database. Changing it leaves older questions to expire, unlinked.
    insight_key: Optional[SecretStr] = Field(None, env="DESK_INSIGHT_KEY")
    # The action server, for the console's line on requests to the desk that failed.
    action_server_url: Optional[str] = Field(None, env="ACTION_SERVER_URL")
    action_server_token: Optional[SecretStr] = Field(None, env="ACTION_SERVER_TOKEN")

    @validator("api_token", "insight_key")
    def _long_enough(cls, value: Optional[SecretStr], field: Any) -> Optional[SecretStr]:  # noqa: N805
        return _secret(value, field.field_info.extra.get("env", field.name))

    @property
    def action_server_status_url(self) -> Optional[str]:
        """ACTION_SERVER_URL names the webhook; its /status is beside it."""
        if not self.action_server_url or self.action_server_token is None:
            return None
        return self.action_server_url.rstrip("/").removesuffix("/webhook") + "/status"

    @validator("rasa_url", "telegram_api_base_url")
    def _no_trailing_slash(cls, value: str) -> str:  # noqa: N805
        return value.rstrip("/")

    @property
    def database(self) -> str:
        return self.desk_database_url or f"sqlite:///{self.data_dir / 'desk.db'}"

    @property
    def conversations_url(self) -> str:
        """The Rasa server's tracker store, which the statistics job reads (only reads)."""
        return self.store_url("conversations")


_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


def http_origin(url: str) -> str:
    """The origin (scheme://host[:port]) of the Rasa server's URL; ValueError if it is none."""
    parts = urlsplit(url.strip())
    if (
        parts.scheme not in ("http", "https")
        or not _HOST.match(parts.netloc)
        or parts.path.strip("/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"WIDGET_RASA_URL must be the Rasa server's origin, like http://{LOOPBACK}:5005: "
            f"{url!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


class WidgetSettings(Settings):
    """The web widget's demo page, and the Rasa server (an origin) its widget talks to."""

    port: int = Field(8080, env="WIDGET_PORT", ge=1, le=65535)
    rasa_url: str = Field(f"http://{LOOPBACK}:5005", env="WIDGET_RASA_URL")
    widget_dir: Path = ROOT / "widget"

    _origin = validator("rasa_url", allow_reuse=True)(http_origin)

    @property
    def script(self) -> Path:
        return self.widget_dir / "dist" / "avrr-widget.js"

    @property
    def demo_page(self) -> Path:
        return self.widget_dir / "demo" / "index.html"


class LaunchSettings(Settings):
    """`make run`: where each part listens; which optional channels start."""

    rasa_port: int = Field(5005, env="RASA_PORT", ge=1, le=65535)
    action_port: int = Field(5055, env="ACTION_PORT", ge=1, le=65535)
    desk_port: int = Field(8000, env="DESK_PORT", ge=1, le=65535)
    widget_port: int = Field(8080, env="WIDGET_PORT", ge=1, le=65535)
    model: Path = Field(ROOT / "models" / "avrr.tar.gz", env="AVRR_MODEL")
    widget_rasa_url: Optional[str] = Field(None, env="WIDGET_RASA_URL")
    widget_origins: Optional[str] = Field(None, env="WIDGET_ORIGINS")
    telegram_bot_token: Optional[SecretStr] = Field(None, env="TELEGRAM_BOT_TOKEN")
    whatsapp_access_token: Optional[SecretStr] = Field(None, env="WHATSAPP_ACCESS_TOKEN")
    # Given to the parts; generated once and kept in the data folder when unset.
    desk_api_token: Optional[SecretStr] = Field(None, env="DESK_API_TOKEN")
    socket_session_secret: Optional[SecretStr] = Field(None, env="SOCKET_SESSION_SECRET")
    rasa_api_token: Optional[SecretStr] = Field(None, env="RASA_API_TOKEN")
    action_server_token: Optional[SecretStr] = Field(None, env="ACTION_SERVER_TOKEN")
    desk_insight_key: Optional[SecretStr] = Field(None, env="DESK_INSIGHT_KEY")

    def secret(self, variable: str) -> Optional[str]:
        """The secret set for the environment variable `variable`, if any."""
        value = getattr(self, variable.lower())
        return value.get_secret_value() if value is not None else None


class ClusterSettings(LaunchSettings):
    """`make cluster` (bot/cluster.py): how many Rasa servers, where every part listens
    (ports counted from `port`), and the folder that holds the cluster's data."""

    data_dir: Path = Field(ROOT / "var" / "cluster", env="AVRR_CLUSTER_DIR")
    replicas: int = Field(2, env="REPLICAS", ge=1, le=10)
    # nginx in front of Rasa here; see bot/cluster.py for the ports after it.
    port: int = Field(8500, env="CLUSTER_PORT", ge=1024, le=65000)


def environment() -> Dict[str, str]:
    """This process's environment, for the launcher to pass on to the parts it starts."""
    return dict(os.environ)


def load(kind: Type[S], **overrides: Any) -> S:
    """`kind` from the environment and `.env`; a clear message, not a traceback, if unusable."""
    try:
        return kind(**overrides)
    except EnvSettingsError as unreadable:
        raise SettingsError(f"{kind.__name__} cannot start: {unreadable}") from None
    except ValidationError as invalid:
        problems = []
        for error in invalid.errors():
            field = kind.__fields__.get(str(error["loc"][0])) if error["loc"] else None
            name = field.field_info.extra.get("env", field.name) if field else "settings"
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError(
            f"{kind.__name__} cannot start: " + "; ".join(problems) + " (see .env.example)"
        ) from None
