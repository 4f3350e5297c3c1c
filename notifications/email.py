"""Rendering an `EmailMessage` into MIME, shared by every email provider.

- `build_mime` writes the RFC 5322 message the SMTP provider sends:
  multipart/alternative with text/plain first and text/html last (RFC 2046
  §5.1.4: the last part is the preferred one), both UTF-8 and
  quoted-printable, so the message is 7-bit clean and no line exceeds the
  998 characters of RFC 5322 §2.1.1, whatever the inlined HTML looks like.
  Non-ASCII display names and subjects become RFC 2047 encoded words.
- `inline_css` moves a template's `<style>` rules into `style=""` attributes
  (many mail clients drop `<style>`); `@media` rules, which cannot be inlined,
  are kept. It never fetches remote stylesheets: rendering does no I/O.
- `message_id_for` makes a notification's RFC 5322 Message-ID: the same for
  every copy of one notification, unique across notifications.

Nothing here keeps state between calls but a cache of each shop's From field.
"""

from __future__ import annotations

import binascii
import email.policy
import hashlib
import hmac
import re
import uuid
from datetime import UTC, datetime
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime
from functools import lru_cache

import css_inline

from app.email_address import DOMAIN as _DOMAIN
from app.email_address import address as _address
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


def build_mime(message: EmailMessage, *, date: datetime | None = None) -> bytes:
    """The RFC 5322 bytes of `message`, dated `date` (default: now, in UTC),
    with CRLF line ends, ready for SMTP DATA.

    Written directly rather than through `email.message`: building and
    flattening with the standard library's header registry costs over 1 ms a
    message, several times the rest of the work of sending one. Plain short
    ASCII headers (nearly all of them) are written as they are; the rest
    (non-ASCII, long, or anything that looks like an encoded word) are folded
    and encoded by the standard library (`email.header`, `email.policy`), and
    the From field, which is the same for every message of a shop, is made
    once.

    Raises ValueError when the message cannot be written as a valid header
    block: a CR or LF in any header value (header injection), a malformed
    address, a malformed extra header name, or an extra header that would
    replace one set here (From, To, Subject, Date, Message-ID, Reply-To,
    MIME and content headers)."""
    values = [message.sender, message.sender_name, message.to, message.subject,
              message.message_id, message.reply_to or "", *message.headers.values()]  # fmt: skip
    if any("\r" in value or "\n" in value for value in values):
        raise ValueError("Header values may not contain linefeed or carriage return characters")
    # Addresses that are not ASCII need SMTPUTF8 (RFC 6531), and then the
    # header block is UTF-8 (RFC 6532) instead of RFC 2047 encoded words.
    international = not (message.sender + message.to + (message.reply_to or "")).isascii()
    policy = email.policy.SMTPUTF8 if international else email.policy.SMTP
    fields = [
        _from_field(message.sender, message.sender_name, policy),
        _address_field("To", message.to, policy),
        _field("Subject", message.subject),
        f"Date: {format_datetime((date or datetime.now(UTC)).astimezone(UTC), usegmt=True)}\r\n",
        f"Message-ID: {message.message_id}\r\n",
    ]
    if message.reply_to:
        fields.append(_address_field("Reply-To", message.reply_to, policy))
    for name, value in message.headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set from the message's own fields")
        fields.append(_field(name, value))
    # "=_" cannot occur in quoted-printable text, so the boundary cannot
    # appear inside a part (RFC 2045 §6.7 suggests exactly this).
    boundary = f"=_{uuid.uuid4().hex}"
    head = "".join(fields) + (
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
    )
    # text/plain first and text/html last: the last part is the preferred one.
    return b"".join([
        head.encode("utf-8" if international else "ascii"),
        _part(boundary, "plain", message.text),
        _part(boundary, "html", message.html),
        f"--{boundary}--\r\n".encode(),
    ])  # fmt: skip


def _field(name: str, value: str) -> str:
    """An unstructured header field with its CRLF, folded where it has spaces
    (RFC 5322 §2.2.3), and RFC 2047-encoded when it is not ASCII or holds
    text that a reader would take for an encoded word."""
    plain = value.isascii() and "=?" not in value
    if plain and len(name) + len(value) < 76:
        return f"{name}: {value}\r\n"
    if plain:
        folded = email.policy.SMTP.header_factory(name, value).fold(policy=email.policy.SMTP)
    else:
        encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
        folded = f"{name}: {encoded}\r\n"
    if any(len(line) > 998 for line in folded.split("\r\n")):
        raise ValueError(f"header {name} is too long")
    return folded


def _address_field(name: str, addr_spec: str, policy: email.policy.EmailPolicy) -> str:
    address = _address(addr_spec)
    if address == addr_spec and address.isascii() and len(name) + len(address) < 76:
        return f"{name}: {address}\r\n"
    return policy.header_factory(name, address).fold(policy=policy)


@lru_cache(maxsize=1024)
def _from_field(addr_spec: str, display_name: str, policy: email.policy.EmailPolicy) -> str:
    """The From field, which only changes with the shop."""
    address = Address(display_name=display_name, addr_spec=_address(addr_spec))
    return policy.header_factory("From", address).fold(policy=policy)


def _part(boundary: str, subtype: str, content: str) -> bytes:
    """One body part: UTF-8, quoted-printable, so it is 7-bit clean and no
    line is over 76 characters whatever the content (RFC 2045 §6.7)."""
    text = content.replace("\r\n", "\n").replace("\r", "\n").encode()
    # With LF alone in its input, every LF in b2a_qp's output is a line end.
    encoded = binascii.b2a_qp(text, istext=True).replace(b"\n", b"\r\n")
    return b"".join([
        f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode(),
        encoded,
        b"\r\n",
    ])  # fmt: skip


def inline_css(html: str) -> str:
    """`html` with its `<style>` rules moved into `style` attributes (at-rules
    such as `@media` stay in a `<style>` element). Remote stylesheets are not
    loaded."""
    inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
    return inliner.inline(html)


def message_id_for(notification: str, secret: str, domain: str) -> str:
    """The RFC 5322 Message-ID of one notification, `<digest@domain>`.

    Derived, not drawn at random: a copy sent again after a worker died
    mid-batch carries the Message-ID of the first, so the recipient's mail
    system can fold the duplicate (RFC 5322 §3.6.4: one Message-ID names one
    message). `notification` must name it uniquely and for good (its shop,
    id and creation time); keying the digest with the deployment's secret
    keeps two deployments, or one whose database was reset, from ever
    sharing an id, and does not disclose how many notifications a shop sent.
    """
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"not a domain name: {domain!r}")
    digest = hmac.new(secret.encode(), notification.encode(), hashlib.sha256).hexdigest()
    return f"<{digest[:40]}@{domain.lower()}>"
