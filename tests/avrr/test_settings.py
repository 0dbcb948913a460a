"""One definition of every process's settings: the environment, then `.env`, then defaults."""
from pathlib import Path

import pytest

from avrr import settings as definitions
from avrr.settings import (
    ROOT,
    ActionServerSettings,
    ClusterSettings,
    DeskSettings,
    LaunchSettings,
    RasaSettings,
    SettingsError,
    TelegramSettings,
    WhatsAppSettings,
    WidgetSettings,
    http_origin,
    load,
    redacted,
)

TELEGRAM = {"TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN",
            "TELEGRAM_WEBHOOK_SECRET": "secret_1-x_0123456"}
REPLICA = {
    "AVRR_REDIS_URL": "redis://:a-redis-password@127.0.0.1:6379/0",
    "SOCKET_SESSION_SECRET": "a-session-secret-0123",
}
WHATSAPP = {
    "WHATSAPP_ACCESS_TOKEN": "wa-token",
    "WHATSAPP_APP_SECRET": "wa-secret",
    "WHATSAPP_VERIFY_TOKEN": "wa-verify",
    "WHATSAPP_PHONE_NUMBER_ID": "1098765432",
}


@pytest.fixture
def env(monkeypatch, tmp_path):
    """An environment of the test's own, and no `.env` but the one a test writes."""
    dotenv = tmp_path / ".env"
    monkeypatch.setattr(definitions.Settings.__config__, "env_file", str(dotenv))
    for name in ("AVRR_DATA_DIR", "AVRR_DATABASE_URL", "RASA_API_TOKEN", "DESK_API_TOKEN",
                 "ACTION_SERVER_TOKEN", "WIDGET_ORIGINS", "REST_CHANNEL_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    def set_env(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    set_env.dotenv = dotenv
    return set_env


def test_every_store_lives_in_the_data_folder_unless_a_database_is_given(env, tmp_path):
    env(AVRR_DATA_DIR=str(tmp_path / "data"))
    rasa = load(RasaSettings)

    assert rasa.tracker_url == f"sqlite:///{tmp_path / 'data' / 'conversations.db'}"
    assert rasa.channels_url == f"sqlite:///{tmp_path / 'data' / 'channels.db'}"
    assert load(RasaSettings, data_dir=ROOT / "var").data_dir == ROOT / "var"

    env(AVRR_DATABASE_URL="postgresql://avrr@db/avrr")
    assert load(RasaSettings).tracker_url == "postgresql://avrr@db/avrr"


def test_dot_env_is_read_and_the_environment_comes_first(env):
    env.dotenv.write_text("RASA_API_TOKEN=from-the-dot-env-file\nWIDGET_ORIGINS=https://a.example\n")
    assert load(RasaSettings).api_token.get_secret_value() == "from-the-dot-env-file"

    env(RASA_API_TOKEN="from-the-environment-1")
    settings = load(RasaSettings)
    assert settings.api_token.get_secret_value() == "from-the-environment-1"
    assert settings.widget_origins == ["https://a.example"]


def test_an_empty_value_counts_as_unset(env):
    env(RASA_API_TOKEN="", WIDGET_ORIGINS="", AVRR_RETENTION_DAYS="")

    settings = load(RasaSettings)

    assert settings.api_token is None
    assert settings.widget_origins == ["http://127.0.0.1:8080", "http://localhost:8080"]
    assert settings.retention_days == 90


def test_origins_are_written_comma_separated(env):
    env(WIDGET_ORIGINS=" https://partner.example , http://127.0.0.1:8080,")

    assert load(RasaSettings).widget_origins == ["https://partner.example", "http://127.0.0.1:8080"]


@pytest.mark.parametrize("origins", [",", " , ,", "  ,"])
def test_origins_given_but_naming_none_are_refused_not_every_origin(env, origins):
    env(WIDGET_ORIGINS=origins)

    with pytest.raises(SettingsError) as stopped:
        load(RasaSettings)

    assert str(stopped.value) == (
        "RasaSettings cannot start: WIDGET_ORIGINS: names no origin: give at least one "
        "(or * for every origin) (see .env.example)")


@pytest.mark.parametrize(
    "kind, values, message",
    [
        (ActionServerSettings, {"DESK_API_TOKEN": "x" * 16}, "ACTION_SERVER_TOKEN: field required"),
        (ActionServerSettings, {"DESK_API_TOKEN": "x" * 16, "ACTION_SERVER_TOKEN": "short"},
         "ACTION_SERVER_TOKEN must be at least 16 characters"),
        (DeskSettings, {"DESK_API_TOKEN": "short"}, "DESK_API_TOKEN must be at least 16"),
        (RasaSettings, {"RASA_API_TOKEN": "short"}, "RASA_API_TOKEN must be at least 16"),
        (LaunchSettings, {"RASA_PORT": "70000"}, "RASA_PORT"),
        (WidgetSettings, {"WIDGET_PORT": "eighty"}, "WIDGET_PORT"),
        (TelegramSettings, {"TELEGRAM_BOT_TOKEN": "t"}, "TELEGRAM_WEBHOOK_SECRET: field required"),
        (TelegramSettings, dict(TELEGRAM, TELEGRAM_WEBHOOK_SECRET="has spaces in it, 16+"),
         "must be 16-256 letters"),
        (TelegramSettings, dict(TELEGRAM, TELEGRAM_WEBHOOK_SECRET="s3cr3t"),
         "must be 16-256 letters"),
        (WhatsAppSettings, dict(WHATSAPP, WHATSAPP_APP_SECRET="  "),
         "WHATSAPP_APP_SECRET: field required"),
        (WhatsAppSettings, dict(WHATSAPP, WHATSAPP_PHONE_NUMBER_ID="+36 1"),
         "WHATSAPP_PHONE_NUMBER_ID"),
        (RasaSettings, dict(REPLICA, AVRR_REDIS_URL="http://127.0.0.1:6379"),
         "AVRR_REDIS_URL: must be a redis://, rediss:// or unix:// URL"),
        (RasaSettings, {"AVRR_REDIS_URL": "redis://127.0.0.1:6379/0"},
         "AVRR_REDIS_URL \\(several replicas\\) needs SOCKET_SESSION_SECRET"),
        (RasaSettings, {"AVRR_LOCK_STORE": "redis"}, "AVRR_LOCK_STORE=redis needs AVRR_REDIS_URL"),
        (RasaSettings, dict(REPLICA, AVRR_LOCK_STORE="disk"), "AVRR_LOCK_STORE"),
    ],
)
def test_unusable_settings_stop_the_start_with_a_clear_message(env, kind, values, message):
    env(**values)

    with pytest.raises(SettingsError, match=message) as stopped:
        load(kind)
    assert str(stopped.value).startswith(f"{kind.__name__} cannot start: ")


def test_secrets_never_show_in_a_representation(env):
    env(**WHATSAPP, **TELEGRAM, **REPLICA)

    shown = repr(load(WhatsAppSettings)) + repr(load(TelegramSettings)) + repr(load(RasaSettings))

    assert "wa-token" not in shown and "wa-secret" not in shown and "TEST-TOKEN" not in shown
    assert "a-redis-password" not in shown


def test_replicas_take_the_lock_store_on_redis_unless_told_to_keep_it_in_memory(env):
    assert not load(RasaSettings).redis_lock_store
    env(**REPLICA)
    assert load(RasaSettings).redis_lock_store
    env(AVRR_LOCK_STORE="memory")
    assert not load(RasaSettings).redis_lock_store
    assert load(RasaSettings).redis_url.get_secret_value() == REPLICA["AVRR_REDIS_URL"]


@pytest.mark.parametrize("url, shown", [
    ("redis://:a-password@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
    ("rediss://avrr:a-password@redis.example:6380/1", "rediss://avrr:***@redis.example:6380/1"),
    ("unix:///run/redis.sock?db=0&password=a-password", "unix:///run/redis.sock?***"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_a_url_is_logged_without_its_password(url, shown):
    assert redacted(url) == shown


def test_channel_settings_have_the_official_apis_by_default(env):
    env(**WHATSAPP, **TELEGRAM, TELEGRAM_API_BASE_URL="http://127.0.0.1:8081/")

    whatsapp, telegram = load(WhatsAppSettings), load(TelegramSettings)

    assert whatsapp.api_base_url == "https://graph.facebook.com/v21.0"
    assert whatsapp.reply_template == "counsellor_reply"
    assert telegram.api_base_url == "http://127.0.0.1:8081"


def test_the_desk_keeps_its_database_in_the_data_folder_by_default(env, tmp_path):
    env(AVRR_DATA_DIR=str(tmp_path), DESK_API_TOKEN="d" * 16)

    assert load(DeskSettings).database == f"sqlite:///{tmp_path / 'desk.db'}"
    env(DESK_DATABASE_URL="postgresql://desk@db/desk")
    assert load(DeskSettings).database == "postgresql://desk@db/desk"


def test_the_widget_page_settings(env):
    env(WIDGET_PORT="8380", WIDGET_RASA_URL="https://chat.example.org:8443/")

    settings = load(WidgetSettings)

    assert settings.port == 8380
    assert settings.rasa_url == "https://chat.example.org:8443"
    assert settings.script == ROOT / "widget" / "dist" / "avrr-widget.js"


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:5005",
        "ftp://127.0.0.1:5005",
        "http://",
        "http://127.0.0.1:5005/rasa",
        "http://127.0.0.1:5005/?x=1",
        "http://user:secret@127.0.0.1:5005",
        'http://x"><script>',
    ],
)
def test_the_rasa_url_of_the_widget_must_be_an_http_origin(url):
    with pytest.raises(ValueError, match="WIDGET_RASA_URL"):
        http_origin(url)


def test_no_module_outside_the_settings_reads_the_environment():
    readers = [
        path for folder in ("actions", "bot", "desk", "avrr", "eval", "bench")
        for path in (ROOT / folder).rglob("*.py")
        if path != ROOT / "avrr" / "settings.py"
        and ("os.environ" in path.read_text() or "getenv" in path.read_text())
    ]
    assert readers == []


def test_the_example_names_every_setting(env):
    example = (ROOT / ".env.example").read_text()
    names = {
        field.field_info.extra["env"]
        for kind in (RasaSettings, TelegramSettings, WhatsAppSettings, ActionServerSettings,
                     DeskSettings, WidgetSettings, LaunchSettings, ClusterSettings)
        for field in kind.__fields__.values()
        if "env" in field.field_info.extra
    }
    assert sorted(n for n in names if f"{n}=" not in example) == []


def test_paths_are_paths():
    assert isinstance(definitions.ROOT, Path)
