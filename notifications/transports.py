"""Which provider sends each channel, chosen by configuration: real
credentials pick a real provider; without them, messages go to files in
`<instance>/outbox/` so a newcomer sees exactly what would have been sent,
or, when `CARELOOP_WITHOUT_PROVIDER=hold` (production never writes files
unless asked), the channel has none and its messages stay queued."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from notifications.folder import FolderEmailProvider, FolderSmsProvider
from notifications.messages import EmailProvider, SmsProvider
from notifications.postmark import PostmarkProvider
from notifications.smtp import SmtpProvider
from notifications.twilio import TwilioProvider

# Why a channel's messages wait, for the operator reading the outbox.
NO_PROVIDER = {
    "email": "no email provider configured (set SMTP_HOST or POSTMARK_SERVER_TOKEN)",
    "sms": "no SMS provider configured (set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)",
}


@dataclass(frozen=True)
class Transports:
    email: EmailProvider | None
    sms: SmsProvider | None

    def missing(self, channel: str) -> str | None:
        """Why `channel` cannot be sent now, or None when it has a provider."""
        return NO_PROVIDER[channel] if getattr(self, channel) is None else None


def from_settings(settings: Settings) -> Transports:
    timeout = settings.provider_timeout_seconds
    folder = settings.without_provider == "folder"
    email: EmailProvider | None = None
    sms: SmsProvider | None = None
    if settings.smtp_host:
        email = SmtpProvider(
            settings.smtp_host, settings.smtp_port, settings.smtp_security,
            settings.smtp_username, settings.smtp_password, timeout,
            connections=settings.smtp_connections,
        )  # fmt: skip
    elif settings.postmark_server_token:
        email = PostmarkProvider(settings.postmark_server_token, settings.postmark_api_url, timeout)
    elif folder:
        email = FolderEmailProvider(settings.instance_dir / "outbox" / "email")
    if settings.twilio_account_sid and settings.twilio_auth_token:
        sms = TwilioProvider(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_api_url,
            timeout,
        )
    elif folder:
        sms = FolderSmsProvider(settings.instance_dir / "outbox" / "sms.log")
    return Transports(email, sms)
