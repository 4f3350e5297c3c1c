"""Settings: parsed once from the environment; anything missing or malformed
stops start-up with one line naming the setting, and secrets stay out of sight."""

from __future__ import annotations

import stat

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from app.cli import main
from app.config import DEV_SECRET_FACTORIES, ConfigError, Settings, ensure_development_secrets

SECRETS = tuple(DEV_SECRET_FACTORIES)  # the four settings the service cannot run without


@pytest.fixture
def base(tmp_path) -> dict[str, str]:
    """A complete, valid environment."""
    return {
        "CARELOOP_ENV": "production",
        "DATABASE_URL": "postgresql+psycopg://careloop:pw@db.internal:5432/careloop",
        "CARELOOP_SECRET_KEY": "secret-key-value-0123456789",
        "CARELOOP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "SHOPIFY_API_KEY": "client-id-abc",
        "SHOPIFY_API_SECRET": "shpss_client_secret_value",
        "CARELOOP_INSTANCE_DIR": str(tmp_path / "instance"),
        "SMTP_HOST": "smtp.internal",
        "TWILIO_ACCOUNT_SID": "AC0123",
        "TWILIO_AUTH_TOKEN": "twilio-token",
    }


@pytest.fixture
def clean_environ(monkeypatch):
    """No CareLoop setting inherited from the process environment."""
    for name in (*SECRETS, "CARELOOP_ENV", "DATABASE_URL", "CARELOOP_INSTANCE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def config_error(values: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(values)
    return str(caught.value)


# --- parsing --------------------------------------------------------------


def test_complete_environment_parses_into_typed_settings(base):
    base |= {"CARELOOP_WEBHOOK_MAX_BYTES": "1024", "CARELOOP_WORKER_POLL_SECONDS": "0.5"}

    settings = Settings.from_env(base)

    assert settings.env == "production" and settings.is_production
    assert settings.database_url == base["DATABASE_URL"]
    assert settings.secret_key == base["CARELOOP_SECRET_KEY"]
    assert settings.encryption_keys == (base["CARELOOP_ENCRYPTION_KEYS"],)
    assert (settings.shopify_api_key, settings.shopify_api_secret) == (
        "client-id-abc",
        "shpss_client_secret_value",
    )
    assert (settings.webhook_max_bytes, settings.worker_poll_seconds) == (1024, 0.5)


def test_defaults_to_development_and_an_sqlite_file_in_the_instance_dir(base, tmp_path):
    del base["CARELOOP_ENV"], base["DATABASE_URL"]

    settings = Settings.from_env(base)

    assert settings.env == "development"
    assert settings.database_url.startswith("sqlite")
    assert make_url(settings.database_url).database == str(tmp_path / "instance" / "careloop.db")


@pytest.mark.parametrize("name", SECRETS)
@pytest.mark.parametrize("blank", [None, "", "   "], ids=["absent", "empty", "spaces"])
def test_each_missing_secret_is_a_config_error_naming_it(base, name, blank):
    if blank is None:
        del base[name]
    else:
        base[name] = blank

    message = config_error(base)

    assert name in message
    assert "required" in message
    assert [other for other in SECRETS if other != name and other in message] == []


def test_several_keys_may_be_given_for_rotation(base):
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    base["CARELOOP_ENCRYPTION_KEYS"] = f"{keys[0]}, {keys[1]}"
    assert Settings.from_env(base).encryption_keys == tuple(keys)


@pytest.mark.parametrize(
    "keys",
    [
        "not-a-fernet-key",
        "c2hvcnQ=",  # base64, but 5 bytes
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@=",
        "{good},not-a-fernet-key",
        "{good},",
    ],
)
def test_bad_fernet_key_is_a_config_error_naming_the_setting(base, keys):
    base["CARELOOP_ENCRYPTION_KEYS"] = keys.format(good=Fernet.generate_key().decode())
    message = config_error(base)
    assert "CARELOOP_ENCRYPTION_KEYS" in message
    assert "not-a-fernet-key" not in message  # a key, even a bad one, is not echoed


@pytest.mark.parametrize("url", ["not a url", "://nothing", "postgresql//missing-colon"], ids=repr)
def test_malformed_database_url_is_a_config_error_naming_it(base, url):
    base["DATABASE_URL"] = url
    assert "DATABASE_URL" in config_error(base)


@pytest.mark.parametrize(
    "url", ["postgresql://careloop@db:notaport/careloop", "postgresql://[::1/careloop"]
)
def test_database_url_with_a_malformed_port_is_a_config_error_naming_it(base, url):
    base["DATABASE_URL"] = url
    assert "DATABASE_URL" in config_error(base)


@pytest.mark.parametrize(
    "url",
    ["mysql://careloop@db/careloop", "oracle://scott@db/orcl", "http://example.com/db"],
)
def test_database_other_than_sqlite_or_postgresql_is_a_config_error(base, url):
    message = config_error(base | {"DATABASE_URL": url})
    assert "DATABASE_URL" in message
    assert "sqlite" in message and "postgresql" in message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:pw@db:5432/careloop", "postgresql+psycopg://u:pw@db:5432/careloop"),
        ("postgresql://db/careloop", "postgresql+psycopg://db/careloop"),
        ("postgresql+psycopg://u@db/careloop", "postgresql+psycopg://u@db/careloop"),
        ("sqlite:////var/lib/careloop.db", "sqlite:////var/lib/careloop.db"),
    ],
)
def test_plain_postgresql_url_is_rewritten_to_the_psycopg_driver(base, given, expected):
    assert Settings.from_env(base | {"DATABASE_URL": given}).database_url == expected


def test_rewriting_the_driver_keeps_a_password_with_special_characters(base):
    base["DATABASE_URL"] = "postgresql://careloop:p%40ss%2Fw%25rd@db/careloop?sslmode=require"

    url = make_url(Settings.from_env(base).database_url)

    assert url.drivername == "postgresql+psycopg"
    assert url.password == "p@ss/w%rd"
    assert url.query == {"sslmode": "require"}


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("CARELOOP_WEBHOOK_MAX_BYTES", "lots"),
        ("CARELOOP_WEBHOOK_MAX_BYTES", "1.5"),
        ("CARELOOP_WEBHOOK_MAX_BYTES", "0"),
        ("CARELOOP_WEBHOOK_MAX_BYTES", "-1"),
        ("CARELOOP_INBOX_MAX_ATTEMPTS", "many"),
        ("CARELOOP_WORKER_POLL_SECONDS", "soon"),
        ("CARELOOP_WORKER_POLL_SECONDS", "0"),
        ("CARELOOP_LOG_LEVEL", "LOUD"),
        ("SMTP_CONNECTIONS", "0"),
        ("SMTP_CONNECTIONS", "33"),
    ],
)
def test_malformed_number_or_level_is_a_config_error_naming_the_setting(base, name, raw):
    message = config_error(base | {name: raw})
    assert name in message
    assert repr(raw) in message


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_poll_interval_must_be_a_finite_number(base, raw):
    assert "CARELOOP_WORKER_POLL_SECONDS" in config_error(
        base | {"CARELOOP_WORKER_POLL_SECONDS": raw}
    )


@pytest.mark.parametrize("env", ["staging", "prod", "Production", ""])
def test_unknown_environment_is_a_config_error_naming_it(base, env):
    message = config_error(base | {"CARELOOP_ENV": env})
    assert "CARELOOP_ENV" in message
    assert "production" in message


# --- secrets stay secret --------------------------------------------------


def test_repr_of_settings_does_not_show_the_secrets(base):
    text = repr(Settings.from_env(base))

    assert "Settings(" in text
    for name in ("CARELOOP_SECRET_KEY", "CARELOOP_ENCRYPTION_KEYS", "SHOPIFY_API_SECRET"):
        assert base[name] not in text, name


def test_repr_of_settings_does_not_show_the_database_password(base):
    base["DATABASE_URL"] = "postgresql://careloop:db-password-42@db/careloop"
    assert "db-password-42" not in repr(Settings.from_env(base))


# --- development secrets --------------------------------------------------


def test_development_secrets_are_generated_into_an_owner_only_file(tmp_path, clean_environ):
    directory = tmp_path / "instance"

    generated = ensure_development_secrets(directory)

    path = directory / "secrets.env"
    assert sorted(generated) == sorted(SECRETS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = dotenv_values(path)
    assert set(values) == set(SECRETS)
    assert all(values.values())
    # What was generated is a configuration that parses.
    settings = Settings.from_env(
        {**values, "CARELOOP_ENV": "development", "CARELOOP_INSTANCE_DIR": str(directory)}
    )
    assert settings.secret_key == values["CARELOOP_SECRET_KEY"]


def test_development_secrets_are_generated_once(tmp_path, clean_environ):
    directory = tmp_path / "instance"
    ensure_development_secrets(directory)
    first = (directory / "secrets.env").read_bytes()

    assert ensure_development_secrets(directory) == []
    assert (directory / "secrets.env").read_bytes() == first


def test_existing_values_are_kept_and_only_missing_ones_added(tmp_path, clean_environ):
    directory = tmp_path / "instance"
    directory.mkdir()
    path = directory / "secrets.env"
    path.write_text("CARELOOP_SECRET_KEY=mine-already\nUNRELATED=keep-me\n")
    path.chmod(0o644)
    clean_environ.setenv("SHOPIFY_API_KEY", "from-the-environment")

    generated = ensure_development_secrets(directory)

    assert sorted(generated) == ["CARELOOP_ENCRYPTION_KEYS", "SHOPIFY_API_SECRET"]
    values = dotenv_values(path)
    assert values["CARELOOP_SECRET_KEY"] == "mine-already"
    assert values["UNRELATED"] == "keep-me"
    assert "SHOPIFY_API_KEY" not in values  # set in the environment: not generated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_existing_quoted_value_survives_generation_unchanged(tmp_path, clean_environ):
    directory = tmp_path / "instance"
    directory.mkdir()
    (directory / "secrets.env").write_text('CARELOOP_SECRET_KEY="s3cret #1"\n')

    ensure_development_secrets(directory)

    assert dotenv_values(directory / "secrets.env")["CARELOOP_SECRET_KEY"] == "s3cret #1"


def test_generated_secrets_file_is_read_outside_production_only(tmp_path, clean_environ):
    directory = tmp_path / "instance"
    ensure_development_secrets(directory)
    clean_environ.setenv("CARELOOP_INSTANCE_DIR", str(directory))
    clean_environ.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")

    clean_environ.setenv("CARELOOP_ENV", "development")
    settings = Settings.from_env()
    assert settings.secret_key == dotenv_values(directory / "secrets.env")["CARELOOP_SECRET_KEY"]

    clean_environ.setenv("CARELOOP_ENV", "production")
    with pytest.raises(ConfigError, match="is required"):
        Settings.from_env()


# --- the command line -----------------------------------------------------


@pytest.mark.parametrize("name", SECRETS)
def test_cli_in_production_with_a_missing_secret_exits_with_one_line_naming_it(
    base, tmp_path, clean_environ, name
):
    # A generated development file must not stand in for it in production.
    ensure_development_secrets(tmp_path / "instance")
    base["DATABASE_URL"] = f"sqlite:///{tmp_path / 'careloop.db'}"
    for key, val in base.items():
        if key != name:
            clean_environ.setenv(key, val)

    result = CliRunner().invoke(main, ["shops", "list"])

    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a crash
    output = result.output.strip()
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1
    assert name in output
    assert not (tmp_path / "careloop.db").exists()  # it stopped before touching anything


def test_cli_with_a_malformed_database_port_exits_with_one_line_naming_it(base, clean_environ):
    for key, val in base.items():
        clean_environ.setenv(key, val)
    clean_environ.setenv("DATABASE_URL", "postgresql://careloop@db:notaport/careloop")

    result = CliRunner().invoke(main, ["shops", "list"])

    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    assert "DATABASE_URL" in result.output


def test_every_missing_or_malformed_setting_is_named_at_once(base):
    del base["CARELOOP_SECRET_KEY"], base["SHOPIFY_API_SECRET"]
    base |= {"CARELOOP_ENCRYPTION_KEYS": "not-a-key", "SMTP_PORT": "twenty-five"}

    message = config_error(base)

    assert "\n" not in message
    for name in ("CARELOOP_SECRET_KEY", "SHOPIFY_API_SECRET", "CARELOOP_ENCRYPTION_KEYS",
                 "SMTP_PORT"):  # fmt: skip
        assert name in message, message


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        (("SMTP_HOST",), "SMTP_HOST or POSTMARK_SERVER_TOKEN"),
        (("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"), "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
    ],
)
def test_production_refuses_a_channel_without_a_provider_naming_what_to_set(base, removed, named):
    for name in removed:
        del base[name]

    message = config_error(base)

    assert named in message and "CARELOOP_WITHOUT_PROVIDER" in message


@pytest.mark.parametrize("choice", ["hold", "folder"])
def test_production_without_a_provider_starts_only_when_the_operator_chose(base, choice):
    del base["SMTP_HOST"]
    settings = Settings.from_env(base | {"CARELOOP_WITHOUT_PROVIDER": choice})
    assert settings.without_provider == choice
    assert "CARELOOP_WITHOUT_PROVIDER" in config_error(base | {"CARELOOP_WITHOUT_PROVIDER": "x"})


def test_production_without_database_url_is_a_config_error_naming_it(base):
    del base["DATABASE_URL"]
    assert "DATABASE_URL is required" in config_error(base)


def test_metrics_token_is_read_and_kept_out_of_the_repr(base):
    settings = Settings.from_env(base | {"CARELOOP_METRICS_TOKEN": "scrape-secret-value"})
    assert settings.metrics_token == "scrape-secret-value"
    assert "scrape-secret-value" not in repr(settings)
