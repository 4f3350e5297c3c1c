"""Which provider sends each channel, chosen by configuration: real
credentials pick a real provider; without them, messages go to files in
`<instance>/outbox/` so a newcomer sees exactly what would have been sent."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from notifications.folder import FolderEmailProvider, FolderSmsProvider
from notifications.messages import EmailProvider, SmsProvider
from notifications.postmark import PostmarkProvider
from notifications.smtp import SmtpProvider
from notifications.twilio import TwilioProvider


@dataclass(frozen=True)
class Transports:
    email: EmailProvider
    sms: SmsProvider


def from_settings(settings: Settings) -> Transports:
    timeout = settings.provider_timeout_seconds
    if settings.smtp_host:
        email: EmailProvider = SmtpProvider(
            settings.smtp_host, settings.smtp_port, settings.smtp_security,
            settings.smtp_username, settings.smtp_password, timeout,
            connections=settings.smtp_connections,
        )  # fmt: skip
    elif settings.postmark_server_token:
        email = PostmarkProvider(settings.postmark_server_token, settings.postmark_api_url, timeout)
    else:
        email = FolderEmailProvider(settings.instance_dir / "outbox" / "email")
    if settings.twilio_account_sid and settings.twilio_auth_token:
        sms: SmsProvider = TwilioProvider(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_api_url,
            timeout,
        )
    else:
        sms = FolderSmsProvider(settings.instance_dir / "outbox" / "sms.log")
    return Transports(email, sms)
