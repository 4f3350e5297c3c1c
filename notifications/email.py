"""Rendering an `EmailMessage` into MIME, shared by every email provider.

- `build_mime` makes the RFC 5322 message the SMTP provider sends:
  multipart/alternative with text/plain first and text/html last (RFC 2046
  §5.1.4: the last part is the preferred one), both UTF-8 and
  quoted-printable, so the message is 7-bit clean and no line exceeds the
  998 characters of RFC 5322 §2.1.1, whatever the inlined HTML looks like.
  Non-ASCII display names and subjects become RFC 2047 encoded words.
- `inline_css` moves a template's `<style>` rules into `style=""` attributes
  (many mail clients drop `<style>`); `@media` rules, which cannot be inlined,
  are kept. It never fetches remote stylesheets: rendering does no I/O.
- `new_message_id` makes a globally unique RFC 5322 Message-ID.

Nothing here keeps state between calls.
"""

from __future__ import annotations

import email.policy
import re
import uuid
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.message import MIMEPart
from email.utils import format_datetime

import css_inline

from notifications.messages import EmailMessage

# Headers that `build_mime` sets itself; `EmailMessage.headers` may not set them.
_RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "sender",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
# RFC 5322 §3.6.8: a field name is printable ASCII except ":" and space.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# A dot-atom domain (RFC 5322 §3.2.3 / §3.6.4 `id-right`), as hosts are written.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def build_mime(message: EmailMessage, *, date: datetime | None = None) -> MimeMessage:
    """The MIME message for `message`, dated `date` (default: now, in UTC).

    Raises ValueError when the message cannot be written as a valid header
    block: a CR or LF in any header value (header injection), a malformed
    address, a malformed extra header name, or an extra header that would
    replace one set here (From, To, Subject, Date, Message-ID, Reply-To,
    MIME and content headers)."""
    policy = email.policy.SMTP
    mime = MimeMessage(policy=policy)
    mime["From"] = _address(message.sender, message.sender_name)
    mime["To"] = _address(message.to)
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime((date or datetime.now(UTC)).astimezone(UTC), usegmt=True)
    mime["Message-ID"] = message.message_id
    if message.reply_to:
        mime["Reply-To"] = _address(message.reply_to)
    for name, value in message.headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set from the message's own fields")
        mime[name] = value
    mime["MIME-Version"] = "1.0"

    text = MIMEPart(policy=policy)
    text.set_content(message.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    html = MIMEPart(policy=policy)
    html.set_content(message.html, subtype="html", charset="utf-8", cte="quoted-printable")
    mime.make_alternative()
    mime.attach(text)
    mime.attach(html)
    return mime


def _address(addr_spec: str, display_name: str = "") -> Address:
    if any(ch in addr_spec for ch in "\r\n"):
        raise ValueError("Header values may not contain linefeed or carriage return characters")
    try:
        address = Address(display_name=display_name, addr_spec=addr_spec)
    except (ValueError, IndexError, HeaderParseError) as exc:  # the header parser's errors
        raise ValueError(f"invalid address {addr_spec!r}: {exc}") from exc
    if not address.username or not address.domain:
        raise ValueError(f"invalid address {addr_spec!r}")
    return address


def sender_problem(addr_spec: str) -> str | None:
    """Why `addr_spec` cannot be a sender address (None if it can): a bare
    address whose domain can also name our Message-IDs."""
    try:
        address = _address(addr_spec)
        new_message_id(address.domain)
    except ValueError as exc:
        return str(exc)
    return None


def inline_css(html: str) -> str:
    """`html` with its `<style>` rules moved into `style` attributes (at-rules
    such as `@media` stay in a `<style>` element). Remote stylesheets are not
    loaded."""
    inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
    return inliner.inline(html)


def new_message_id(domain: str) -> str:
    """A new RFC 5322 Message-ID, `<random@domain>`: 122 random bits (UUID 4)
    make a collision practically impossible without any shared counter."""
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"not a domain name: {domain!r}")
    return f"<{uuid.uuid4().hex}@{domain.lower()}>"
