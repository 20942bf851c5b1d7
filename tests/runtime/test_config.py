import pytest

from botmon.runtime.config import ConfigError, Rate, Settings


def test_defaults_follow_the_contract(tmp_path):
    s = Settings.from_env({}, data_dir=tmp_path)
    assert s.http_addr == "127.0.0.1:8080"
    assert [s.addr(x) for x in ("health", "metrics", "alerts", "logs")] == [
        "127.0.0.1:50051", "127.0.0.1:50052", "127.0.0.1:50053", "127.0.0.1:50054"]
    assert s.target("logs") == s.logs_addr
    assert s.store_url == f"sqlite:///{tmp_path.resolve() / 'botmon.db'}"
    assert s.probe_database_url == s.store_url
    assert s.probe_cache_url is None
    assert s.rate_limits["metrics"] == Rate(60, 60)
    assert s.rate_limits["logs"] == Rate(30, 60)
    assert s.rate_limits["alerts"] == Rate(10, 60)
    assert s.rate_limits["ingest"] == Rate(1200, 60)
    assert s.rate_limits["health"].limit == 0


def test_environment_overrides_and_derived_values(tmp_path):
    s = Settings.from_env({
        "BOTMON_LOGS_TARGET": "dns:///logs:50054",
        "BOTMON_REDIS_URL": "redis://cache:6379/0",
        "BOTMON_RATE_LIMITS": "metrics=5/second",
        "BOTMON_API_TOKENS": "a" * 20 + ":operator:ci,b" * 1 + "b" * 19 + ":viewer",
    }, data_dir=tmp_path)
    assert s.target("logs") == "dns:///logs:50054"
    assert s.probe_cache_url == "redis://cache:6379/0"
    assert s.rate_limits["metrics"] == Rate(5, 1)
    assert s.rate_limits["logs"] == Rate(30, 60), "unnamed classes keep their defaults"
    assert [t.role for t in s.api_tokens] == ["operator", "viewer"]
    assert s.api_tokens[0].subject == "ci"


@pytest.mark.parametrize("env,value", [
    ("BOTMON_HTTP_ADDR", "8080"),
    ("BOTMON_METRICS_ADDR", "host:99999"),
    ("BOTMON_RATE_LIMITS", "metrics=sixty/minute"),
    ("BOTMON_RATE_LIMITS", "metrics=60/fortnight"),
    ("BOTMON_API_TOKENS", "short:admin"),
    ("BOTMON_API_TOKENS", "a-long-enough-token-value:root"),
    ("BOTMON_STORE_URL", "mysql://x/y"),
    ("BOTMON_REDIS_URL", "localhost:6379"),
    ("BOTMON_ALERT_EVAL_INTERVAL", "-1"),
    ("BOTMON_SMTP_STARTTLS", "maybe"),
    ("BOTMON_TRUSTED_PROXIES", "10.0.0.0/33"),
    ("BOTMON_RATE_LIMIT_FAIL", "sideways"),
])
def test_bad_values_name_the_variable(env, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({env: value})
    message = str(info.value)
    assert message.startswith(f"{env}: ")
    assert "\n" not in message


def test_toml_file_sets_the_same_keys_and_environment_wins(tmp_path):
    cfg = tmp_path / "botmon.toml"
    cfg.write_text('BOTMON_HTTP_ADDR = "0.0.0.0:9000"\nalert_eval_interval = "2"\n'
                   'BOTMON_LOGS_ADDR = "127.0.0.1:1"\n')
    s = Settings.from_env({"BOTMON_CONFIG": str(cfg), "BOTMON_LOGS_ADDR": "127.0.0.1:2"})
    assert s.http_addr == "0.0.0.0:9000"
    assert s.alert_eval_interval == 2.0
    assert s.logs_addr == "127.0.0.1:2"


def test_unreadable_or_invalid_config_file(tmp_path):
    with pytest.raises(ConfigError, match="^BOTMON_CONFIG: cannot read"):
        Settings.from_env({"BOTMON_CONFIG": str(tmp_path / "missing.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("= nope")
    with pytest.raises(ConfigError, match="^BOTMON_CONFIG: .* not valid TOML"):
        Settings.from_env({"BOTMON_CONFIG": str(bad)})


def test_redacted_hides_secrets(tmp_path):
    s = Settings.from_env({"BOTMON_JWT_SECRET": "s3cret" * 6, "BOTMON_SMTP_PASSWORD": "pw",
                           "BOTMON_STORE_URL": "postgresql://u:pw@db/botmon",
                           "BOTMON_API_TOKENS": "x" * 24 + ":admin"}, data_dir=tmp_path)
    text = repr(s.redacted())
    for secret in ("s3cret", "pw@db", "x" * 24):
        assert secret not in text
    assert s.redacted()["BOTMON_JWT_SECRET"] == "***"
