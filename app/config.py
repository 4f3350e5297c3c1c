"""Settings, read from the environment in one place and parsed into typed values.

A missing or malformed setting stops start-up with one line naming it
(`ConfigError`). There are no fallback secrets: on the embedded default the
first run writes generated secrets into `instance/secrets.env` (mode 0600) and
says so; in production every secret must be given.
"""

from __future__ import annotations

import math
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.email_address import sender_problem

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "test", "production")
# What a channel with no provider does: messages written under <instance>/outbox/,
# or kept queued with the reason until a provider is configured.
WITHOUT_PROVIDER = ("folder", "hold")
SMTP_SECURITY = ("starttls", "tls", "none")
# Parallel SMTP connections a worker may open (notifications.smtp enforces it too).
SMTP_MAX_CONNECTIONS = 32

# Secrets the service cannot run without, and how a development one is made.
DEV_SECRET_FACTORIES = {
    "CARELOOP_SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "CARELOOP_ENCRYPTION_KEYS": lambda: Fernet.generate_key().decode(),
    "SHOPIFY_API_KEY": lambda: "dev-" + secrets.token_hex(8),
    "SHOPIFY_API_SECRET": lambda: secrets.token_urlsafe(32),
}


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str = field(repr=False)  # may hold a password
    secret_key: str = field(repr=False)
    encryption_keys: tuple[str, ...] = field(repr=False)
    shopify_api_key: str
    shopify_api_secret: str = field(repr=False)
    instance_dir: Path
    public_url: str = "http://127.0.0.1:8000"
    webhook_max_bytes: int = 2 * 1024 * 1024
    inbox_max_attempts: int = 8
    inbox_retention_days: int = 30
    worker_poll_seconds: float = 1.0
    log_level: str = "INFO"
    # When set, /metrics answers only `Authorization: Bearer <this>`.
    metrics_token: str | None = field(default=None, repr=False)
    # Notifications. With no SMTP host, Postmark token or Twilio account, the
    # messages are written to <instance>/outbox/ instead (development).
    email_from: str = "notifications@careloop.invalid"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_connections: int = 4
    postmark_server_token: str | None = field(default=None, repr=False)
    postmark_api_url: str = "https://api.postmarkapp.com"
    postmark_webhook_password: str | None = field(default=None, repr=False)
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_api_url: str = "https://api.twilio.com"
    twilio_from: str | None = None
    without_provider: str = "folder"  # WITHOUT_PROVIDER; production never defaults to folder
    outbox_max_attempts: int = 6
    outbox_batch_size: int = 50
    outbox_lease_seconds: int = 120
    provider_timeout_seconds: float = 10.0
    # Shopify: the Admin API version we speak, the scopes we ask for, and
    # where a shop's endpoints are ("{shop}" is the domain; tests point it
    # at a local stand-in).
    shopify_api_version: str = "2026-07"
    shopify_scopes: str = (
        "read_orders,read_all_orders,read_customers,read_fulfillments,"
        "read_merchant_managed_fulfillment_orders,read_third_party_fulfillment_orders,"
        "write_discounts"
    )
    shopify_url_template: str = "https://{shop}"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse settings from `environ` (default: the process environment plus
        `.env` in development only, and outside production the generated
        `instance/secrets.env`). A deployed process takes its settings from its
        environment alone, never from a file left in the working directory."""
        values = dict(os.environ if environ is None else environ)
        env = values.get("CARELOOP_ENV", "development")
        if env not in ENVIRONMENTS:
            raise ConfigError(f"CARELOOP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
        instance_dir = instance_dir_from(values)
        if environ is None:
            if env == "development":
                values = {**_read_env_file(ROOT / ".env"), **values}
            if env != "production":
                values = {**_read_env_file(instance_dir / "secrets.env"), **values}

        # Every problem is collected, so that one start-up names them all.
        problems: list[str] = []

        def check(parse, *args, fallback=None):
            try:
                return parse(*args)
            except ConfigError as exc:
                problems.append(str(exc))
                return fallback

        def required(name: str) -> str:
            value = values.get(name, "").strip()
            if not value:
                hint = "" if env == "production" else " (run `careloop run` once to generate it)"
                raise ConfigError(f"{name} is required{hint}")
            return value

        database_url = check(_database_url, values, env, instance_dir, fallback="sqlite://")
        encryption_keys = check(_encryption_keys, required, fallback=())
        email_from = values.get("CARELOOP_EMAIL_FROM") or cls.email_from
        if sender_problem(email_from):
            problems.append(f"CARELOOP_EMAIL_FROM is not a sender address: {email_from!r}")
        if bool(values.get("TWILIO_ACCOUNT_SID")) != bool(values.get("TWILIO_AUTH_TOKEN")):
            problems.append("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN go together")
        if bool(values.get("SMTP_USERNAME")) != bool(values.get("SMTP_PASSWORD")):
            problems.append("SMTP_USERNAME and SMTP_PASSWORD go together")
        without_provider = check(_without_provider, values, env, fallback="hold")
        parsed = dict(
            secret_key=check(required, "CARELOOP_SECRET_KEY"),
            shopify_api_key=check(required, "SHOPIFY_API_KEY"),
            shopify_api_secret=check(required, "SHOPIFY_API_SECRET"),
            webhook_max_bytes=check(_positive_int, values, "CARELOOP_WEBHOOK_MAX_BYTES", 2 << 20),
            inbox_max_attempts=check(_positive_int, values, "CARELOOP_INBOX_MAX_ATTEMPTS", 8),
            inbox_retention_days=check(_positive_int, values, "CARELOOP_INBOX_RETENTION_DAYS", 30),
            worker_poll_seconds=check(_positive_float, values, "CARELOOP_WORKER_POLL_SECONDS", 1.0),
            log_level=check(_log_level, values.get("CARELOOP_LOG_LEVEL", "INFO")),
            smtp_port=check(_positive_int, values, "SMTP_PORT", 587),
            smtp_security=check(_choice, values, "SMTP_SECURITY", SMTP_SECURITY, "starttls"),
            smtp_connections=check(
                _positive_int, values, "SMTP_CONNECTIONS", 4, SMTP_MAX_CONNECTIONS
            ),
            outbox_max_attempts=check(_positive_int, values, "CARELOOP_OUTBOX_MAX_ATTEMPTS", 6),
            outbox_batch_size=check(_positive_int, values, "CARELOOP_OUTBOX_BATCH_SIZE", 50),
            outbox_lease_seconds=check(_positive_int, values, "CARELOOP_OUTBOX_LEASE_SECONDS", 120),
            provider_timeout_seconds=check(
                _positive_float, values, "CARELOOP_PROVIDER_TIMEOUT", 10.0
            ),
            shopify_api_version=check(_api_version, values),
            shopify_url_template=check(_url_template, values),
        )  # fmt: skip
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(
            env=env,
            database_url=database_url,
            encryption_keys=encryption_keys,
            instance_dir=instance_dir,
            public_url=values.get("CARELOOP_PUBLIC_URL", cls.public_url).rstrip("/"),
            email_from=email_from,
            smtp_host=_optional(values, "SMTP_HOST"),
            smtp_username=_optional(values, "SMTP_USERNAME"),
            smtp_password=_optional(values, "SMTP_PASSWORD"),
            postmark_server_token=_optional(values, "POSTMARK_SERVER_TOKEN"),
            postmark_api_url=(values.get("POSTMARK_API_URL") or cls.postmark_api_url).rstrip("/"),
            postmark_webhook_password=_optional(values, "POSTMARK_WEBHOOK_PASSWORD"),
            twilio_account_sid=_optional(values, "TWILIO_ACCOUNT_SID"),
            twilio_auth_token=_optional(values, "TWILIO_AUTH_TOKEN"),
            twilio_api_url=(values.get("TWILIO_API_URL") or cls.twilio_api_url).rstrip("/"),
            twilio_from=_optional(values, "TWILIO_FROM"),
            shopify_scopes=values.get("SHOPIFY_SCOPES") or cls.shopify_scopes,
            without_provider=without_provider,
            metrics_token=_optional(values, "CARELOOP_METRICS_TOKEN"),
            **parsed,
        )


def _database_url(values: Mapping[str, str], env: str, instance_dir: Path) -> str:
    if env == "production" and not values.get("DATABASE_URL", "").strip():
        # No silent fallback to a local file that a redeploy would lose.
        raise ConfigError("DATABASE_URL is required in production")
    database_url = values.get("DATABASE_URL") or f"sqlite:///{instance_dir / 'careloop.db'}"
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"DATABASE_URL is malformed: {exc}") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        # psycopg 3 is the driver we install; SQLAlchemy's default would be psycopg2.
        database_url = url.set(drivername="postgresql+psycopg").render_as_string(
            hide_password=False
        )
    return database_url


def _encryption_keys(required) -> tuple[str, ...]:
    encryption_keys = tuple(k.strip() for k in required("CARELOOP_ENCRYPTION_KEYS").split(","))
    for key in encryption_keys:
        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(
                "CARELOOP_ENCRYPTION_KEYS must be comma-separated Fernet keys "
                "(32 url-safe base64-encoded bytes each)"
            ) from None
    return encryption_keys


def _without_provider(values: Mapping[str, str], env: str) -> str:
    """What happens to a channel that has no provider. Outside production its
    messages are written to files (what a newcomer wants to see); in
    production customers' messages must never be "sent" into a folder, so a
    channel without a provider stops start-up unless the operator chose."""
    raw = (values.get("CARELOOP_WITHOUT_PROVIDER") or "").strip().lower()
    if raw:
        if raw not in WITHOUT_PROVIDER:
            raise ConfigError(
                f"CARELOOP_WITHOUT_PROVIDER must be one of {', '.join(WITHOUT_PROVIDER)}, "
                f"not {raw!r}"
            )
        return raw
    if env != "production":
        return "folder"
    missing = []
    if not (_optional(values, "SMTP_HOST") or _optional(values, "POSTMARK_SERVER_TOKEN")):
        missing.append("email needs SMTP_HOST or POSTMARK_SERVER_TOKEN")
    if not (_optional(values, "TWILIO_ACCOUNT_SID") and _optional(values, "TWILIO_AUTH_TOKEN")):
        missing.append("SMS needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    if missing:
        raise ConfigError(
            f"no provider in production: {'; '.join(missing)} (or set "
            "CARELOOP_WITHOUT_PROVIDER=hold to keep such messages queued, "
            "=folder to write them to files)"
        )
    return "hold"


def instance_dir_from(values: Mapping[str, str]) -> Path:
    """Where the embedded default keeps its database and generated secrets."""
    return Path(values.get("CARELOOP_INSTANCE_DIR") or ROOT / "instance")


def instance_dir() -> Path:
    return instance_dir_from(os.environ)


def ensure_development_secrets(instance_dir: Path) -> list[str]:
    """Generate missing development secrets into `instance_dir/secrets.env`.

    Returns the names generated (empty when nothing was missing). Values that
    are already set in the environment are never overwritten.
    """
    path = instance_dir / "secrets.env"
    existing = _read_env_file(path)
    missing = [
        name for name in DEV_SECRET_FACTORIES if not (existing.get(name) or os.environ.get(name))
    ]
    if not missing:
        return []
    instance_dir.mkdir(parents=True, exist_ok=True)
    # Append only: what is already in the file (quoting, comments) stays as written.
    # Created with owner-only permissions before any secret is written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "a") as handle:
        if not existing:
            handle.write("# Generated by careloop for development. Do not use in production.\n")
        handle.writelines(f"{name}={DEV_SECRET_FACTORIES[name]()}\n" for name in missing)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return missing


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _positive_int(
    values: Mapping[str, str], name: str, default: int, maximum: int | None = None
) -> int:
    raw = values.get(name)
    if raw is None or raw == "":
        return default
    try:
        parsed = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if parsed <= 0:
        raise ConfigError(f"{name} must be greater than 0, not {raw!r}")
    if maximum is not None and parsed > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, not {raw!r}")
    return parsed


def _positive_float(values: Mapping[str, str], name: str, default: float) -> float:
    raw = values.get(name)
    if raw is None or raw == "":
        return default
    try:
        parsed = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(parsed) or parsed <= 0:
        raise ConfigError(f"{name} must be a finite number greater than 0, not {raw!r}")
    return parsed


def _optional(values: Mapping[str, str], name: str) -> str | None:
    return (values.get(name) or "").strip() or None


def _choice(values: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = (values.get(name) or default).strip().lower()
    if raw not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {raw!r}")
    return raw


def _api_version(values: Mapping[str, str]) -> str:
    raw = values.get("SHOPIFY_API_VERSION") or Settings.shopify_api_version
    year, _, month = raw.partition("-")
    if not (len(year) == 4 and year.isdigit() and month in ("01", "04", "07", "10")):
        raise ConfigError(f"SHOPIFY_API_VERSION must look like 2026-07, not {raw!r}")
    return raw


def _url_template(values: Mapping[str, str]) -> str:
    raw = values.get("SHOPIFY_URL_TEMPLATE") or Settings.shopify_url_template
    if not raw.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ConfigError("SHOPIFY_URL_TEMPLATE must be https:// (or a loopback stand-in)")
    return raw.rstrip("/")


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"CARELOOP_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {raw!r}")
    return level
