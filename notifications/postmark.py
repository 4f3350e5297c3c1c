"""Email through Postmark's HTTP API, and Postmark's delivery webhooks.

Sources (Postmark's developer documentation; the fixtures' README in
tests/fixtures/postmark/ quotes the parts relied on):

- Batch: https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails
  `POST /email/batch`, a JSON array of up to 500 messages (50 MB in all);
  the answer is a JSON array with one `{ErrorCode, Message, MessageID,
  SubmittedAt, To}` per message.
- API overview: https://postmarkapp.com/developer/api/overview
  `X-Postmark-Server-Token`, `Accept`/`Content-Type: application/json`; HTTP
  200, 401 (missing or incorrect token), 422 (body `{ErrorCode, Message}`),
  429, 500, 503; API error codes (10 bad or missing API token, 100
  maintenance, 300 invalid email request, 406 inactive recipient, 429 rate
  limit exceeded, ...).
- Message fields: https://postmarkapp.com/developer/api/email-api
  (`From`, `To`, `Subject`, `HtmlBody`, `TextBody`, `ReplyTo`, `Headers` as
  `[{Name, Value}]`, `MessageStream`).
- Webhooks: https://postmarkapp.com/developer/webhooks/webhooks-overview
  (basic HTTP authentication with the credentials in the webhook URL),
  .../webhooks/delivery-webhook, .../webhooks/bounce-webhook,
  .../webhooks/spam-complaint-webhook, and the bounce types at
  https://postmarkapp.com/developer/api/bounce-api#bounce-types.

Why `/email/batch` rather than `/email` per message: one request carries up
to 500 messages, which is what `send_batch` is for (one connection, few
round trips, far less pressure on Postmark's rate limit), and the answer
still classifies each message: the batch endpoint answers HTTP 200 even when
some messages fail, with the results in the order of the request (Postmark's
official PHP library documents this: github.com/activecampaign/postmark-php,
wiki "Sending Batches"). What a batch cannot do is attribute a request-level
failure (401, 422, 429, 5xx, a timeout) to one message; those all mean "not
now" anyway, so every message of that request is TRANSIENT.

Classification (per message, from `ErrorCode`):

- 0 -> SENT, `provider_id` = Postmark's `MessageID` (what its webhooks name);
- 406 inactive recipient (hard bounce, spam complaint or manual suppression)
  -> PERMANENT, `unsubscribed=True`;
- 300 invalid email request -> PERMANENT, except when it blames the From
  address ("Invalid 'From' address: … is not a verified sender signature",
  Postmark support: "Troubleshooting 422 Unprocessable Entity Errors"): that
  is our configuration, so TRANSIENT until someone verifies the sender;
- 10 bad or missing token -> TRANSIENT, "authentication failed";
- anything else (429 rate limit, 100 maintenance, sender signature or
  account states, unknown codes) -> TRANSIENT: not the recipient's doing, so
  not a reason to give the message up; the outbox's attempt limit ends it.

A timeout after the request was sent leaves it unknown whether Postmark took
the messages; they are TRANSIENT and may be delivered twice (at least once).
The server token is never logged and never part of a reason.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from typing import Any, Literal, cast

import requests

from app.clock import parse_timestamp
from notifications.email import build_mime
from notifications.messages import EmailMessage, Outcome, SendResult


class WebhookError(ValueError):
    """A Postmark webhook body we cannot interpret. Our own error rather than
    the domain's: a provider module knows nothing of the domain."""


log = logging.getLogger(__name__)

BATCH_PATH = "/email/batch"
MAX_BATCH_MESSAGES = 500  # documented limit per call
MAX_BATCH_BYTES = 45 * 1024 * 1024  # documented 50 MB per call, with a margin

# API error codes (https://postmarkapp.com/developer/api/overview#error-codes).
ERROR_OK = 0
ERROR_BAD_TOKEN = 10
ERROR_INVALID_EMAIL_REQUEST = 300
ERROR_INACTIVE_RECIPIENT = 406


class PostmarkProvider:
    name = "postmark"

    def __init__(
        self,
        server_token: str,
        api_url: str = "https://api.postmarkapp.com",
        timeout_seconds: float = 10,
        message_stream: str = "outbound",
    ):
        if not server_token:
            raise ValueError("a Postmark server token is required")
        if not timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        self._server_token = server_token
        self.api_url = api_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.message_stream = message_stream

    def __repr__(self) -> str:
        return f"PostmarkProvider(api_url={self.api_url!r}, message_stream={self.message_stream!r})"

    def send_batch(self, messages: list[EmailMessage]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        pending: list[tuple[int, dict[str, Any]]] = []
        for index, message in enumerate(messages):
            try:
                build_mime(message)  # the same checks as SMTP: no header injection etc.
            except ValueError as exc:
                results[index] = SendResult(Outcome.PERMANENT, reason=f"invalid message: {exc}")
                continue
            pending.append((index, self._payload(message)))
        if pending:
            with requests.Session() as session:
                session.headers.update(
                    {
                        "Accept": "application/json",
                        "Content-Type": "application/json",
                        "X-Postmark-Server-Token": self._server_token,
                    }
                )
                for chunk in _chunks(pending):
                    for index, result in zip(
                        (index for index, _ in chunk),
                        self._post(session, [payload for _, payload in chunk]),
                        strict=True,
                    ):
                        results[index] = result
        return cast(list[SendResult], results)  # every slot is filled by now

    def _payload(self, message: EmailMessage) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "From": str(Address(display_name=message.sender_name, addr_spec=message.sender)),
            "To": message.to,
            "Subject": message.subject,
            "HtmlBody": message.html,
            "TextBody": message.text,
            "MessageStream": self.message_stream,
        }
        if message.reply_to:
            payload["ReplyTo"] = message.reply_to
        if message.headers:
            payload["Headers"] = [
                {"Name": name, "Value": value} for name, value in message.headers.items()
            ]
        return payload

    def _post(self, session: requests.Session, payloads: list[dict[str, Any]]) -> list[SendResult]:
        count = len(payloads)
        try:
            response = session.post(
                self.api_url + BATCH_PATH,
                data=json.dumps(payloads, ensure_ascii=False).encode(),
                timeout=self.timeout_seconds,
            )
        except requests.Timeout:
            return self._all_transient(count, f"timed out after {self.timeout_seconds:g} s")
        except requests.RequestException as exc:
            return self._all_transient(count, f"connection failed: {type(exc).__name__}")

        body = _json(response)
        if response.status_code == 200:
            if (
                isinstance(body, list)
                and len(body) == count
                and all(isinstance(item, dict) for item in body)
            ):
                return [_classify(item) for item in body]
            return self._all_transient(count, "unexpected answer from Postmark (HTTP 200)")

        code = body.get("ErrorCode") if isinstance(body, dict) else None
        text = body.get("Message") if isinstance(body, dict) else None
        detail = f"HTTP {response.status_code}" + (f": {text}" if text else "")
        if response.status_code == 401 or code == ERROR_BAD_TOKEN:
            reason = f"authentication failed ({detail})"
        elif response.status_code == 429:
            reason = f"rate limited ({detail})"
        else:
            reason = f"request refused ({detail})"
        error_code = str(code) if isinstance(code, int) else str(response.status_code)
        return self._all_transient(count, reason, error_code)

    def _all_transient(
        self, count: int, reason: str, error_code: str | None = None
    ) -> list[SendResult]:
        log.warning("postmark: %s (%d message(s) left for a retry)", reason, count)
        return [
            SendResult(Outcome.TRANSIENT, reason=reason, error_code=error_code)
            for _ in range(count)
        ]


def _chunks(
    pending: list[tuple[int, dict[str, Any]]],
) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """Requests within Postmark's batch limits (500 messages, 50 MB)."""
    chunk: list[tuple[int, dict[str, Any]]] = []
    size = 0
    for item in pending:
        item_size = len(json.dumps(item[1], ensure_ascii=False).encode())
        if chunk and (len(chunk) == MAX_BATCH_MESSAGES or size + item_size > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # an HTML error page from a proxy, an empty body...
        return None


def _classify(item: Mapping[str, Any]) -> SendResult:
    code = item.get("ErrorCode")
    text = str(item.get("Message") or "").strip()
    if code == ERROR_OK:
        message_id = item.get("MessageID")
        if isinstance(message_id, str) and message_id:
            return SendResult(Outcome.SENT, provider_id=message_id)
        return SendResult(Outcome.TRANSIENT, reason="accepted without a MessageID", error_code="0")
    if not isinstance(code, int):
        return SendResult(Outcome.TRANSIENT, reason="unexpected answer from Postmark")
    error_code = str(code)
    if code == ERROR_INACTIVE_RECIPIENT:
        return SendResult(
            Outcome.PERMANENT,
            reason=text or "inactive recipient",
            error_code=error_code,
            unsubscribed=True,
        )
    if code == ERROR_INVALID_EMAIL_REQUEST:
        ours = "'from'" in text.lower() or "sender signature" in text.lower()
        return SendResult(
            Outcome.TRANSIENT if ours else Outcome.PERMANENT,
            reason=text or "invalid email request",
            error_code=error_code,
        )
    if code == ERROR_BAD_TOKEN:
        reason = "authentication failed" + (f": {text}" if text else "")
        return SendResult(Outcome.TRANSIENT, reason=reason, error_code=error_code)
    return SendResult(Outcome.TRANSIENT, reason=text or f"error {code}", error_code=error_code)


# -- webhooks ---------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryReport:
    """What a Postmark webhook says about one sent message."""

    provider_id: str  # Postmark's MessageID, as SendResult.provider_id had it
    status: Literal["delivered", "bounced", "complained"]
    permanent: bool  # True: never send to this recipient again on this channel
    recipient: str
    detail: str
    occurred_at: datetime  # aware, UTC


# Bounce types that say the address itself is bad or must not be mailed
# (bounce-api#bounce-types). Others (SoftBounce, Transient, DnsError,
# AutoResponder, Blocked, DMARCPolicy...) may pass or are about us.
HARD_BOUNCE_TYPES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})


def parse_webhook(payload: dict) -> DeliveryReport | None:
    """The report in a Delivery, Bounce or SpamComplaint webhook; None for the
    other record types (Open, Click, SubscriptionChange, Inbound...).

    A bounce is permanent when its type is a hard one, or when Postmark marked
    the address `Inactive` (it will refuse further sends to it with 406).
    A spam complaint is always permanent: Postmark deactivates the address
    and does not let it be reactivated.

    Raises WebhookError (a ValueError) naming the field when a known record
    type lacks what we need."""
    if not isinstance(payload, dict):
        raise WebhookError("a Postmark webhook body is a JSON object")
    record_type = payload.get("RecordType")
    if record_type == "Delivery":
        return DeliveryReport(
            provider_id=_required(payload, "MessageID"),
            status="delivered",
            permanent=False,
            recipient=_required(payload, "Recipient"),
            detail=_text(payload.get("Details")),
            occurred_at=_moment(payload, "DeliveredAt"),
        )
    if record_type == "Bounce":
        bounce_type = _required(payload, "Type")
        if bounce_type == "SpamComplaint":
            return _complaint(payload)
        permanent = bounce_type in HARD_BOUNCE_TYPES or payload.get("Inactive") is True
        return DeliveryReport(
            provider_id=_required(payload, "MessageID"),
            status="bounced",
            permanent=permanent,
            recipient=_required(payload, "Email"),
            detail=_bounce_detail(payload, bounce_type),
            occurred_at=_moment(payload, "BouncedAt"),
        )
    if record_type == "SpamComplaint":
        return _complaint(payload)
    return None


def _complaint(payload: dict) -> DeliveryReport:
    return DeliveryReport(
        provider_id=_required(payload, "MessageID"),
        status="complained",
        permanent=True,
        recipient=_required(payload, "Email"),
        detail=_bounce_detail(payload, "SpamComplaint"),
        occurred_at=_moment(payload, "BouncedAt"),
    )


def _bounce_detail(payload: dict, bounce_type: str) -> str:
    parts = [bounce_type, _text(payload.get("Description")), _text(payload.get("Details"))]
    return ": ".join(part for part in parts if part)


def _required(payload: dict, name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise WebhookError(f"{name}: missing or not a string")
    text = value.strip()
    # Ids and addresses are printable; a NUL would reach the database query
    # (PostgreSQL refuses it in text).
    if not text.isprintable():
        raise WebhookError(f"{name}: control characters")
    return text


def _moment(payload: dict, name: str) -> datetime:
    try:
        moment = parse_timestamp(payload.get(name))
    except ValueError as exc:
        raise WebhookError(f"{name}: not an ISO 8601 timestamp") from exc
    if moment is None:
        raise WebhookError(f"{name}: missing")
    return moment


def _text(value: object) -> str:
    return " ".join(str(value).split()) if value not in (None, "") else ""


def verify_webhook_auth(
    expected_user: str, expected_password: str, authorization_header: str | None
) -> bool:
    """Whether `Authorization: Basic ...` carries exactly these credentials.

    Postmark sends them when the webhook URL is
    `https://<user>:<password>@host/path` (webhooks-overview, "Basic HTTP
    authentication"); choose URL-safe values (e.g. `secrets.token_urlsafe`)
    so that nothing needs percent-encoding, and no ":" in the user (RFC 7617).
    Both parts are compared in constant time, whatever matches. Empty
    expected credentials accept nothing."""
    if not expected_user or not expected_password or not authorization_header:
        return False
    scheme, _, token = authorization_header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, colon, password = decoded.partition(b":")
    user_ok = hmac.compare_digest(user, expected_user.encode())
    password_ok = hmac.compare_digest(password, expected_password.encode())
    return bool(colon) & user_ok & password_ok
