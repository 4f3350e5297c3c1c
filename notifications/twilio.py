"""Twilio Programmable Messaging: sending a text, classifying the answer,
and reading what Twilio posts back (status callbacks, inbound messages),
each checked with its X-Twilio-Signature.

Sources (quoted in tests/fixtures/twilio/README.md, with the fixtures):

- Create a Message: https://www.twilio.com/docs/messaging/api/message-resource
  `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP basic auth
  (Account SID, Auth Token), form fields `To`, `Body`, and `From` or
  `MessagingServiceSid`, optional `StatusCallback`. Success is 201 with the
  Message resource as JSON; its `sid` ("SM...") identifies the message.
- Errors: https://www.twilio.com/docs/usage/twilios-response and
  https://www.twilio.com/docs/api/errors — a JSON body
  `{"code", "message", "more_info", "status"}`. 20003 (401) is a failed
  authentication, 20429 (429) too many requests, 21610 a recipient who
  replied STOP; the number codes are listed at `RECIPIENT_ERRORS`.
- Status callbacks: https://www.twilio.com/docs/messaging/guides/track-outbound-message-status
  and .../outbound-message-status-in-status-callbacks — a form POST with
  `MessageSid`, `MessageStatus` (older `SmsSid`/`SmsStatus` too), `To`,
  `From`, `AccountSid`, `ApiVersion`, and `ErrorCode` when delivery failed.
- Inbound messages: https://www.twilio.com/docs/messaging/guides/webhook-request
  — a form POST with `MessageSid`, `From`, `To`, `Body`, `NumMedia`, ...
- Signatures: https://www.twilio.com/docs/usage/webhooks/webhooks-security —
  base64(HMAC-SHA1(auth token, full URL + each POST parameter's name and
  value, sorted by name)). Twilio's own validator (twilio-python,
  `twilio/request_validator.py`) also accepts the URL with the default port
  added or removed, and orders repeated names by value; so do we.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

import requests

from notifications.messages import Outcome, SendResult, SmsMessage

API_URL = "https://api.twilio.com"
SIGNATURE_HEADER = "X-Twilio-Signature"

UNSUBSCRIBED = 21610  # "Attempt to send to unsubscribed recipient" (replied STOP)
AUTHENTICATION_FAILED = 20003
TOO_MANY_REQUESTS = 20429

# The recipient's number is wrong or can never get this text: retrying the
# same number does not help.
RECIPIENT_ERRORS = {
    21211: "invalid 'To' phone number",
    21401: "invalid phone number",
    21408: "SMS to the region of the 'To' number is not enabled",
    21612: "'To' number is not reachable via SMS",
    21614: "'To' number is not a valid mobile number",
    21635: "'To' number is a landline",
}
# Our own sender or account is misconfigured: every message fails until an
# operator fixes it, after which the same message goes through, so these
# are retried like a failed authentication rather than dropped.
SENDER_ERRORS = {
    20404: "resource not found (check the account SID)",
    21606: "'From' number cannot send to this destination",
    21659: "'From' is not a Twilio number",
    21661: "'From' number is not SMS-capable",
}

Params = Mapping[str, str] | Iterable[tuple[str, str]]


class TwilioProvider:
    """`SmsProvider` over Twilio's REST API, with `requests`."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        api_url: str = API_URL,
        timeout_seconds: float = 10,
    ):
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.api_url = api_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._session = requests.Session()

    def __repr__(self) -> str:  # never show the token
        return f"TwilioProvider({self.account_sid!r}, api_url={self.api_url!r})"

    @property
    def messages_url(self) -> str:
        return f"{self.api_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def form(self, message: SmsMessage) -> dict[str, str]:
        """The form fields of the create-Message request."""
        fields = {"To": message.to, "Body": message.body}
        if message.sender.startswith("MG"):
            fields["MessagingServiceSid"] = message.sender
        else:
            fields["From"] = message.sender
        if message.status_callback:
            fields["StatusCallback"] = message.status_callback
        return fields

    def send(self, message: SmsMessage) -> SendResult:
        try:
            response = self._session.post(
                self.messages_url,
                data=self.form(message),
                auth=(self.account_sid, self._auth_token),
                headers={"Accept": "application/json"},
                timeout=self.timeout_seconds,
            )
        except requests.Timeout:
            return self._result(
                Outcome.TRANSIENT, reason=f"timed out after {self.timeout_seconds:g}s"
            )
        except requests.RequestException as exc:
            return self._result(Outcome.TRANSIENT, reason=f"{type(exc).__name__}: {exc}")
        return self._classify(response)

    def _classify(self, response: requests.Response) -> SendResult:
        status = response.status_code
        body = _json(response)
        if 200 <= status < 300:
            sid = body.get("sid") if isinstance(body.get("sid"), str) else None
            # Accepted either way: a retry would text the customer twice.
            reason = None if sid else f"HTTP {status} without a message sid"
            return self._result(Outcome.SENT, provider_id=sid, reason=reason)

        code = _code(body.get("code"))
        said = body.get("message") if isinstance(body.get("message"), str) else None
        detail = f"HTTP {status}" + (f", Twilio {code}" if code else "")
        detail += f": {said}" if said else ""
        error_code = str(code) if code else None

        if code == UNSUBSCRIBED:
            return self._result(
                Outcome.PERMANENT,
                reason=f"recipient unsubscribed (replied STOP); {detail}",
                error_code=error_code,
                unsubscribed=True,
            )
        if status == 401 or code == AUTHENTICATION_FAILED:
            return self._result(
                Outcome.TRANSIENT, reason=f"authentication failed; {detail}", error_code=error_code
            )
        if status == 429 or code == TOO_MANY_REQUESTS:
            return self._result(
                Outcome.TRANSIENT, reason=f"rate limited; {detail}", error_code=error_code
            )
        if status >= 500:
            return self._result(Outcome.TRANSIENT, reason=detail, error_code=error_code)
        if code in RECIPIENT_ERRORS:
            return self._result(
                Outcome.PERMANENT,
                reason=f"{RECIPIENT_ERRORS[code]}; {detail}",
                error_code=error_code,
            )
        if code in SENDER_ERRORS:
            return self._result(
                Outcome.TRANSIENT,
                reason=f"sender configuration: {SENDER_ERRORS[code]}; {detail}",
                error_code=error_code,
            )
        # Any other refusal (a 4xx): the same request would be refused again.
        return self._result(Outcome.PERMANENT, reason=detail, error_code=error_code)

    def _result(self, outcome: Outcome, *, reason: str | None = None, **fields) -> SendResult:
        if reason and self._auth_token:
            reason = reason.replace(self._auth_token, "[auth token]")
        return SendResult(outcome, reason=reason, **fields)


def _code(value: object) -> int | None:
    """Twilio's error code: a JSON number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# --- X-Twilio-Signature --------------------------------------------------------


def _pairs(params: Params) -> list[tuple[str, str]]:
    if hasattr(params, "getlist"):  # Werkzeug's MultiDict (request.form): every value
        items = [(name, value) for name in params for value in params.getlist(name)]
    elif isinstance(params, Mapping):
        items = list(params.items())
    else:
        items = list(params)
    return [(str(name), str(value)) for name, value in items]


def signature(auth_token: str, url: str, params: Params) -> str:
    """X-Twilio-Signature of a request: base64 HMAC-SHA1, keyed with the
    auth token, of the full URL (query string included) followed by each
    POST parameter's name and value, sorted by name (then value, for a
    repeated name). `params` is a dict, a list of (name, value) pairs, or
    Werkzeug's `request.form` (all values of a repeated name count)."""
    data = url + "".join(name + value for name, value in sorted(_pairs(params)))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


_DEFAULT_PORTS = {"https": 443, "http": 80}


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with the scheme's default port removed or added:
    a proxy in front of us may report either form of what Twilio signed."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default is None or not parts.hostname:
        return [url]
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host = hostport.rsplit(":", 1)[0] if port is not None else hostport
    variants = [url]
    for netloc in (host, f"{host}:{port or default}"):
        variant = urlunsplit(parts._replace(netloc=userinfo + at + netloc))
        if variant not in variants:
            variants.append(variant)
    return variants


def verify_signature(auth_token: str, url: str, params: Params, header_value: str | None) -> bool:
    """Whether `header_value` is Twilio's signature of this request; compared
    in constant time. `url` is the URL Twilio was given (scheme, host, path
    and query string exactly as configured), not one rebuilt behind a proxy."""
    if not header_value or not auth_token:
        return False
    pairs = _pairs(params)
    given = header_value.strip().encode()
    matches = [
        hmac.compare_digest(signature(auth_token, variant, pairs).encode(), given)
        for variant in _url_variants(url)
    ]
    return any(matches)


# --- What Twilio posts to us ---------------------------------------------------


class CallbackError(ValueError):
    """A Twilio form post we cannot use; the message names the field."""


class UntrackedStatus(CallbackError):
    """A well-formed status callback for a status we do not track (accepted,
    scheduled, canceled, ...): nothing to record, nothing wrong."""


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"


@dataclass(frozen=True)
class StatusReport:
    """One status callback for an outbound message."""

    message_sid: str
    status: MessageStatus
    error_code: str | None  # e.g. "30003" (unreachable handset), with undelivered/failed
    to: str | None

    @property
    def unsubscribed(self) -> bool:
        return self.error_code == str(UNSUBSCRIBED)


@dataclass(frozen=True)
class InboundMessage:
    """A text someone sent to one of our numbers."""

    from_: str
    to: str
    body: str
    message_sid: str


def _field(form: Mapping[str, str], *names: str, required: bool = True) -> str | None:
    for name in names:
        value = form.get(name)
        if value:
            text = str(value).strip()
            # SIDs, numbers, statuses and codes: short and printable. A NUL
            # would reach the database (PostgreSQL refuses it in text).
            if len(text) > 128 or not text.isprintable():
                raise CallbackError(f"{name} is not a printable value of at most 128 characters")
            return text
    if required:
        raise CallbackError(f"missing {names[0]}")
    return None


def parse_status_callback(form: Mapping[str, str]) -> StatusReport:
    """A status callback's form (a dict or Werkzeug's `request.form`)."""
    sid = _field(form, "MessageSid", "SmsSid")
    raw_status = _field(form, "MessageStatus", "SmsStatus")
    try:
        status = MessageStatus(raw_status.lower())
    except ValueError:
        raise UntrackedStatus(f"unknown MessageStatus {raw_status!r}") from None
    return StatusReport(
        message_sid=sid,
        status=status,
        error_code=_field(form, "ErrorCode", required=False),
        to=_field(form, "To", required=False),
    )


def parse_inbound(form: Mapping[str, str]) -> InboundMessage:
    """An incoming message's form. `Body` is empty for a picture alone."""
    return InboundMessage(
        from_=_field(form, "From"),
        to=_field(form, "To"),
        body=str(form.get("Body") or ""),
        message_sid=_field(form, "MessageSid", "SmsMessageSid", "SmsSid"),
    )
