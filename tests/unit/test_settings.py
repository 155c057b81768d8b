"""The one settings loader: names, defaults, and start-up refusing bad configuration by name."""
import pytest

from config.settings import DEFAULT_SQLITE_URL, SettingsError, load_settings

BASE = {"SECRET_KEY": "k", "WECHAT_TOKEN": "t", "WECHAT_APP_ID": "wx1", "WECHAT_APP_SECRET": "s"}
AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def test_minimal_environment_is_embedded_plaintext():
    settings = load_settings(BASE)
    assert settings.embedded and settings.database_url == DEFAULT_SQLITE_URL
    assert not settings.wechat_encrypted
    assert settings.wechat_api_base_url == "https://api.weixin.qq.com"


def test_production_environment():
    settings = load_settings({**BASE, "DATABASE_URL": "postgres://u@db/x", "REDIS_URL": "redis://r:6379/0",
                              "WECHAT_ENCODING_AES_KEY": AES, "WECHAT_API_BASE_URL": "http://127.0.0.1:9/",
                              "MINIPROGRAM_APP_ID": "wxm", "MINIPROGRAM_APP_SECRET": "ms"})
    assert settings.database_url == "postgresql+psycopg://u@db/x"
    assert not settings.embedded and settings.wechat_encrypted
    assert settings.wechat_api_base_url == "http://127.0.0.1:9"


@pytest.mark.parametrize("missing", sorted(BASE))
def test_missing_required_setting_is_named(missing):
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        load_settings(env)


@pytest.mark.parametrize("name,value", [
    ("WECHAT_ENCODING_AES_KEY", "short"),
    ("WECHAT_ENCODING_AES_KEY", "!" * 43),
    ("DATABASE_URL", "mysql://x/y"),
    ("REDIS_URL", "http://x"),
    ("WECHAT_API_BASE_URL", "ftp://x"),
    ("MINIPROGRAM_APP_ID", "wxm"),  # without its secret
    ("WEBHOOK_MAX_BODY_BYTES", "lots"),
])
def test_malformed_setting_is_named(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({**BASE, name: value})


def test_the_wechat_api_read_timeout_is_a_setting():
    from liaison.runtime import wechat_timeout

    assert wechat_timeout(load_settings(BASE)) == (3.0, 10.0)
    assert wechat_timeout(load_settings({**BASE, "WECHAT_API_TIMEOUT_SECONDS": "30"})) == (3.0, 30.0)
    with pytest.raises(SettingsError, match="WECHAT_API_TIMEOUT_SECONDS"):
        load_settings({**BASE, "WECHAT_API_TIMEOUT_SECONDS": "soon"})
