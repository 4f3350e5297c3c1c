"""SMS through Twilio, tested against a stand-in for Twilio's Messages API
running on loopback (built from Twilio's documented request and answer
formats; see tests/fixtures/twilio/README.md), plus the X-Twilio-Signature,
status callbacks, inbound keywords, E.164 numbers and segment counting.

The stand-in signs its status callbacks with a signer written here from the
documentation, not with the code under test; both are checked against
Twilio's published examples."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import requests
from processes import free_port, serve_wsgi
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from notifications.messages import Outcome, SmsMessage
from notifications.phone import keyword_action, segments, to_e164
from notifications.twilio import (
    CallbackError,
    InboundMessage,
    MessageStatus,
    StatusReport,
    TwilioProvider,
    parse_inbound,
    parse_status_callback,
    signature,
    verify_signature,
)
from support import load_fixture

ACCOUNT_SID = "AC3f9c4e1a7b2d58e06c1f4a9b2e7d3c58"
AUTH_TOKEN = "9e1b7c3a5d2f48e6b0c4a8d2f6e1b3c7"  # ours, shaped like a real one
SERVICE_SID = "MG0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
OUR_NUMBER = "+15017122661"
CUSTOMER = "+34612345678"

# What the Messages endpoint takes (a subset: the fields we could ever send).
DOCUMENTED_FIELDS = {"To", "From", "MessagingServiceSid", "Body", "StatusCallback", "MediaUrl"}


ERRORS = load_fixture("twilio", "errors")


def documented_sign(token: str, url: str, form: list[tuple[str, str]]) -> str:
    """The stand-in's signer, straight from Twilio's description: the URL,
    then every parameter name and value sorted by name, HMAC-SHA1, base64."""
    data = url
    for name, value in sorted(form):
        data += name + value
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


# --- Local servers ---------------------------------------------------------------


@dataclass
class Received:
    path: str
    auth: tuple[str | None, str | None] | None
    content_type: str
    form: list[tuple[str, str]]

    @property
    def fields(self) -> dict[str, str]:
        return dict(self.form)


Answer = Callable[[Received], Response]


@dataclass
class TwilioStandIn:
    """Twilio's create-Message endpoint, as documented: basic auth with the
    account SID and auth token, a form body, 201 with the Message resource or
    an error `{code, message, more_info, status}`. After a 201 it can post
    status callbacks, signed, to the message's StatusCallback URL."""

    account_sid: str
    auth_token: str
    requests: list[Received] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    callbacks: list[dict[str, str]] = field(default_factory=list)  # statuses to post after a 201
    signing_token: str | None = None  # sign callbacks with another token (a forgery)
    release: threading.Event = field(default_factory=threading.Event)

    def reset(self) -> None:
        self.release.set()  # wake any answer still sleeping
        self.requests, self.violations, self.answers, self.callbacks = [], [], [], []
        self.signing_token = None
        self.release = threading.Event()

    def __call__(self, environ, start_response):
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        expected_path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if request.method != "POST" or request.path != expected_path:
            self.violations.append(f"{request.method} {request.path}")
            return error("20404", 404)
        auth = request.authorization
        received = Received(
            path=request.path,
            auth=(auth.username, auth.password) if auth else None,
            content_type=request.mimetype,
            form=list(request.form.items(multi=True)),
        )
        self.requests.append(received)
        if received.auth != (self.account_sid, self.auth_token):
            return error("20003", 401)
        if received.content_type != "application/x-www-form-urlencoded":
            self.violations.append(f"content type {received.content_type}")
        names = [name for name, _ in received.form]
        unknown = set(names) - DOCUMENTED_FIELDS
        if unknown or len(names) != len(set(names)):
            self.violations.append(f"fields {names}")
        fields = received.fields
        if "To" not in fields or ("From" in fields) == ("MessagingServiceSid" in fields):
            self.violations.append(f"To, and one of From or MessagingServiceSid: {names}")
        if not fields.get("Body"):
            return error("21602", 400)
        if len(fields["Body"]) > 1600:
            return error("21617", 400)
        if self.answers:
            return self.answers.pop(0)(received)
        return self.created(fields)

    def created(self, fields: dict[str, str]) -> Response:
        sid = "SM" + uuid.uuid4().hex
        message = copy.deepcopy(load_fixture("twilio", "message_created"))
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        service = fields.get("MessagingServiceSid")
        message.update(
            account_sid=self.account_sid,
            sid=sid,
            to=fields["To"],
            body=fields["Body"],
            uri=f"{base}.json",
            subresource_uris={"media": f"{base}/Media.json"},
            # With a Messaging Service the sender is picked later (docs: status
            # "accepted", num_segments "0" until then).
            status="accepted" if service else "queued",
            messaging_service_sid=service,
            num_segments="0" if service else "1",
            **{"from": None if service else fields["From"]},
        )
        if fields.get("StatusCallback") and self.callbacks:
            threading.Thread(
                target=self.post_callbacks,
                args=(fields["StatusCallback"], sid, fields, list(self.callbacks)),
                daemon=True,
            ).start()
        return Response(json.dumps(message), status=201, mimetype="application/json")

    def post_callbacks(self, url: str, sid: str, fields: dict, statuses: list[dict]) -> None:
        for extra in statuses:
            form = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "From": fields.get("From", OUR_NUMBER),
                "To": fields["To"],
                "MessageSid": sid,
                "SmsSid": sid,
                "MessageStatus": extra["MessageStatus"],
                "SmsStatus": extra["MessageStatus"],
                **{k: v for k, v in extra.items() if k != "MessageStatus"},
            }
            if "MessagingServiceSid" in fields:
                form["MessagingServiceSid"] = fields["MessagingServiceSid"]
            token = self.signing_token or self.auth_token
            header = documented_sign(token, url, list(form.items()))
            requests.post(url, data=form, headers={"X-Twilio-Signature": header}, timeout=5)


def error(code: str, status: int, **changes) -> Response:
    body = {**ERRORS[code], **changes}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def answer_error(code: str) -> Answer:
    return lambda received: error(code, ERRORS[code]["status"])


@dataclass
class CallbackReceiver:
    """Our end of the status callback: checks the signature against the URL
    Twilio was given, then parses. Keeps what arrived."""

    base_url: str = ""
    reports: queue.Queue = field(default_factory=queue.Queue)
    refused: queue.Queue = field(default_factory=queue.Queue)

    def __call__(self, environ, start_response):
        request = Request(environ)
        url = self.base_url + environ["PATH_INFO"]
        if environ.get("QUERY_STRING"):
            url += "?" + environ["QUERY_STRING"]
        header = request.headers.get("X-Twilio-Signature")
        if not verify_signature(AUTH_TOKEN, url, request.form.items(multi=True), header):
            self.refused.put(url)
            return Response("bad signature", status=403)(environ, start_response)
        self.reports.put(parse_status_callback(request.form))
        return Response(status=204)(environ, start_response)


@pytest.fixture(scope="module")
def stand_in_server() -> Iterator[tuple[TwilioStandIn, str]]:
    stand_in = TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN)
    with serve_wsgi(stand_in) as url:
        yield stand_in, url
    stand_in.release.set()


@pytest.fixture
def twilio(stand_in_server) -> Iterator[TwilioStandIn]:
    stand_in, _ = stand_in_server
    stand_in.reset()
    yield stand_in
    violations = list(stand_in.violations)
    stand_in.reset()
    assert violations == [], "the provider broke Twilio's documented request format"


@pytest.fixture
def provider(stand_in_server) -> TwilioProvider:
    _, url = stand_in_server
    return TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, api_url=url, timeout_seconds=2)


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    callbacks = CallbackReceiver()
    with serve_wsgi(callbacks) as url:
        callbacks.base_url = url
        yield callbacks


def sms(body: str = "Your order #1001 has shipped.", **changes) -> SmsMessage:
    return SmsMessage(**{"to": CUSTOMER, "sender": OUR_NUMBER, "body": body, **changes})


# --- Sending ---------------------------------------------------------------------


def test_an_accepted_message_is_sent_with_twilios_message_sid(twilio, provider):
    result = provider.send(sms())

    assert result.outcome is Outcome.SENT
    assert result.provider_id is not None and result.provider_id.startswith("SM")
    assert len(result.provider_id) == 34
    assert (result.reason, result.error_code, result.unsubscribed) == (None, None, False)


def test_the_request_carries_exactly_the_documented_fields_and_basic_auth(twilio, provider):
    provider.send(sms(status_callback="https://careloop.example/webhooks/twilio/status?n=7"))

    [received] = twilio.requests
    assert received.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert received.auth == (ACCOUNT_SID, AUTH_TOKEN)
    assert received.content_type == "application/x-www-form-urlencoded"
    assert received.form == [
        ("To", CUSTOMER),
        ("Body", "Your order #1001 has shipped."),
        ("From", OUR_NUMBER),
        ("StatusCallback", "https://careloop.example/webhooks/twilio/status?n=7"),
    ]


def test_a_messaging_service_sender_goes_as_MessagingServiceSid_not_From(twilio, provider):
    result = provider.send(sms(sender=SERVICE_SID))

    assert result.outcome is Outcome.SENT
    [received] = twilio.requests
    assert received.fields == {
        "To": CUSTOMER,
        "Body": "Your order #1001 has shipped.",
        "MessagingServiceSid": SERVICE_SID,
    }


def test_an_alphanumeric_sender_goes_as_From(twilio, provider):
    provider.send(sms(sender="CareLoop"))

    assert twilio.requests[0].fields["From"] == "CareLoop"
    assert "MessagingServiceSid" not in twilio.requests[0].fields


def test_no_status_callback_field_without_a_callback_url(twilio, provider):
    provider.send(sms())

    assert "StatusCallback" not in twilio.requests[0].fields


def test_non_latin_text_and_emoji_arrive_intact(twilio, provider):
    body = "Ваш заказ отправлен 📦 — está en camino"

    provider.send(sms(body))

    assert twilio.requests[0].fields["Body"] == body


def test_a_recipient_who_replied_stop_is_permanent_and_unsubscribed(twilio, provider):
    twilio.answers.append(answer_error("21610"))

    result = provider.send(sms())

    assert result.outcome is Outcome.PERMANENT
    assert result.unsubscribed is True
    assert result.error_code == "21610"
    assert "Attempt to send to unsubscribed recipient" in result.reason


@pytest.mark.parametrize("code", ["21211", "21614", "21612", "21408", "21635"])
def test_an_invalid_or_unreachable_number_is_permanent(twilio, provider, code):
    twilio.answers.append(answer_error(code))

    result = provider.send(sms())

    assert result.outcome is Outcome.PERMANENT
    assert result.error_code == code
    assert result.unsubscribed is False
    assert ERRORS[code]["message"] in result.reason


def test_a_body_twilio_refuses_is_permanent(twilio, provider):
    result = provider.send(sms("x" * 1601))

    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, "21617")


def test_wrong_credentials_are_transient_authentication_failures(twilio, stand_in_server):
    _, url = stand_in_server
    wrong_token = "0" * 32
    provider = TwilioProvider(ACCOUNT_SID, wrong_token, api_url=url, timeout_seconds=2)

    result = provider.send(sms())

    assert twilio.requests[0].auth == (ACCOUNT_SID, wrong_token)  # the stand-in refused it
    assert result.outcome is Outcome.TRANSIENT
    assert result.reason.startswith("authentication failed")
    assert result.error_code == "20003"
    assert wrong_token not in result.reason


def test_a_reason_never_contains_the_auth_token(twilio, provider):
    def echo_the_password(received: Received) -> Response:  # an upstream that leaks
        return error("21211", 400, message=f"bad request from {received.auth[1]}")

    twilio.answers.append(echo_the_password)

    result = provider.send(sms())

    assert result.outcome is Outcome.PERMANENT
    assert AUTH_TOKEN not in result.reason
    assert "bad request from [auth token]" in result.reason
    assert AUTH_TOKEN not in repr(provider)


def test_too_many_requests_is_transient(twilio, provider):
    twilio.answers.append(answer_error("20429"))

    result = provider.send(sms())

    assert (result.outcome, result.error_code) == (Outcome.TRANSIENT, "20429")
    assert result.reason.startswith("rate limited")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda r: error("20500", 500), id="500-json"),
        pytest.param(lambda r: Response("<html>Bad Gateway</html>", status=502), id="502-html"),
        pytest.param(lambda r: Response("", status=503), id="503-empty"),
    ],
)
def test_server_errors_are_transient(twilio, provider, answer):
    twilio.answers.append(answer)

    result = provider.send(sms())

    assert result.outcome is Outcome.TRANSIENT
    assert result.reason.startswith("HTTP 5")


def test_a_misconfigured_sender_is_retried_not_dropped(twilio, provider):
    twilio.answers.append(answer_error("21606"))

    result = provider.send(sms())

    assert (result.outcome, result.error_code) == (Outcome.TRANSIENT, "21606")
    assert result.reason.startswith("sender configuration")


def test_an_accepted_answer_without_a_sid_still_counts_as_sent(twilio, provider):
    twilio.answers.append(lambda r: Response("{}", status=201, mimetype="application/json"))

    result = provider.send(sms())

    assert result.outcome is Outcome.SENT  # resending would text the customer twice
    assert result.provider_id is None
    assert "without a message sid" in result.reason


def test_a_stand_in_slower_than_the_timeout_is_transient_and_quick(twilio, stand_in_server):
    _, url = stand_in_server

    def sleep_past_timeout(received: Received) -> Response:
        twilio.release.wait(10)
        return error("20500", 500)

    twilio.answers.append(sleep_past_timeout)
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, api_url=url, timeout_seconds=0.3)

    started = time.monotonic()
    result = provider.send(sms())
    elapsed = time.monotonic() - started

    assert result.outcome is Outcome.TRANSIENT
    assert "timed out" in result.reason
    assert elapsed < 1.5


def test_nothing_listening_is_transient():
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, f"http://127.0.0.1:{free_port()}", 1)

    result = provider.send(sms())

    assert result.outcome is Outcome.TRANSIENT
    assert "ConnectionError" in result.reason
    assert AUTH_TOKEN not in result.reason


# --- Status callbacks, end to end --------------------------------------------------


def drain(reports: queue.Queue, count: int) -> list[StatusReport]:
    return [reports.get(timeout=5) for _ in range(count)]


def test_signed_status_callbacks_reach_us_and_parse(twilio, provider, receiver):
    twilio.callbacks = [{"MessageStatus": "sent"}, {"MessageStatus": "delivered"}]
    callback_url = f"{receiver.base_url}/webhooks/twilio/status?shop=7&n=42"

    result = provider.send(sms(status_callback=callback_url))

    reports = drain(receiver.reports, 2)
    assert [r.status for r in reports] == [MessageStatus.SENT, MessageStatus.DELIVERED]
    assert {r.message_sid for r in reports} == {result.provider_id}
    assert {r.to for r in reports} == {CUSTOMER}
    assert {r.error_code for r in reports} == {None}
    assert receiver.refused.empty()


def test_an_undelivered_callback_carries_twilios_error_code(twilio, provider, receiver):
    twilio.callbacks = [{"MessageStatus": "undelivered", "ErrorCode": "30003"}]

    result = provider.send(sms(status_callback=f"{receiver.base_url}/webhooks/twilio/status"))

    [report] = drain(receiver.reports, 1)
    assert report == StatusReport(result.provider_id, MessageStatus.UNDELIVERED, "30003", CUSTOMER)


def test_a_callback_signed_with_another_token_is_refused(twilio, provider, receiver):
    twilio.callbacks = [{"MessageStatus": "delivered"}]
    twilio.signing_token = "f" * 32
    callback_url = f"{receiver.base_url}/webhooks/twilio/status?shop=7"

    provider.send(sms(status_callback=callback_url))

    assert receiver.refused.get(timeout=5) == callback_url
    assert receiver.reports.empty()


# --- X-Twilio-Signature ------------------------------------------------------------

DOCS_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def docs_params(caller: str) -> dict[str, str]:
    return {
        "CallSid": "CA1234567890ABCDE",
        "Caller": caller,
        "Digits": "1234",
        "From": caller,
        "To": "+18005551212",
    }


# Twilio's worked examples (auth token "12345"); sources in tests/fixtures/twilio/README.md.
DOCUMENTED_VECTORS = [
    pytest.param(
        docs_params("+14158675310"), "GvWf1cFY/Q7PnoempGyD5oXAezc=", id="webhooks-security"
    ),
    pytest.param(
        docs_params("+14158675309"), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", id="helper-libraries"
    ),
    pytest.param(
        [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")],
        "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
        id="repeated-parameter",
    ),
]


@pytest.mark.parametrize(("params", "expected"), DOCUMENTED_VECTORS)
def test_signature_matches_twilios_published_examples(params, expected):
    assert signature("12345", DOCS_URL, params) == expected
    assert verify_signature("12345", DOCS_URL, params, expected)


@pytest.mark.parametrize(("params", "expected"), DOCUMENTED_VECTORS[:2])
def test_the_stand_ins_signer_matches_the_published_examples_too(params, expected):
    assert documented_sign("12345", DOCS_URL, list(params.items())) == expected


def test_a_repeated_form_field_signs_with_every_value():
    form = MultiDict([("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678")])
    form.add("Digits", "1234")

    assert verify_signature("12345", DOCS_URL, form, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")


def test_signature_does_not_depend_on_parameter_order():
    params = docs_params("+14158675310")

    assert signature("12345", DOCS_URL, list(reversed(params.items()))) == signature(
        "12345", DOCS_URL, params
    )


VALID = signature("12345", DOCS_URL, docs_params("+14158675310"))


@pytest.mark.parametrize(
    ("token", "url", "params", "header"),
    [
        pytest.param("12345", DOCS_URL, {**docs_params("+14158675310"), "Digits": "1235"}, VALID,
                     id="tampered-param"),
        pytest.param("12345", DOCS_URL, {**docs_params("+14158675310"), "Extra": ""}, VALID,
                     id="added-param"),
        pytest.param("12345", DOCS_URL.replace("foo=1", "foo=2"), docs_params("+14158675310"),
                     VALID, id="other-query"),
        pytest.param("12345", DOCS_URL.replace("myapp", "yourapp"), docs_params("+14158675310"),
                     VALID, id="other-path"),
        pytest.param("12345", DOCS_URL.replace("https:", "http:"), docs_params("+14158675310"),
                     VALID, id="other-scheme"),
        pytest.param("12346", DOCS_URL, docs_params("+14158675310"), VALID, id="wrong-token"),
        pytest.param("12345", DOCS_URL, docs_params("+14158675310"), VALID[:-1], id="truncated"),
        pytest.param("12345", DOCS_URL, docs_params("+14158675310"), "", id="empty-header"),
        pytest.param("12345", DOCS_URL, docs_params("+14158675310"), None, id="no-header"),
    ],
)  # fmt: skip
def test_verify_signature_rejects(token, url, params, header):
    assert verify_signature(token, url, params, header) is False


def test_verify_signature_accepts_the_url_with_its_default_port_written_out():
    url = DOCS_URL.replace(".com/", ".com:443/")

    assert verify_signature("12345", url, docs_params("+14158675310"), VALID)


# --- Parsing what Twilio posts -------------------------------------------------------


def test_a_delivered_status_callback_parses():
    report = parse_status_callback(load_fixture("twilio", "status_callback_delivered"))

    assert report == StatusReport(
        message_sid="SM1f0e2d3c4b5a69788796a5b4c3d2e1f0",
        status=MessageStatus.DELIVERED,
        error_code=None,
        to=CUSTOMER,
    )


def test_an_undelivered_status_callback_keeps_the_error_code():
    report = parse_status_callback(MultiDict(load_fixture("twilio", "status_callback_undelivered")))

    assert (report.status, report.error_code) == (MessageStatus.UNDELIVERED, "30003")
    assert report.unsubscribed is False


def test_a_failed_callback_for_an_unsubscribed_recipient_says_so():
    form = {**load_fixture("twilio", "status_callback_undelivered"), "MessageStatus": "failed"}

    assert parse_status_callback({**form, "ErrorCode": "21610"}).unsubscribed is True


def test_the_older_sms_names_are_enough():
    form = {"SmsSid": "SM1", "SmsStatus": "sent", "To": CUSTOMER}

    assert parse_status_callback(form) == StatusReport("SM1", MessageStatus.SENT, None, CUSTOMER)


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"MessageStatus": "delivered"}, "missing MessageSid"),
        ({"MessageSid": "SM1"}, "missing MessageStatus"),
        ({"MessageSid": "SM1", "MessageStatus": "teleported"}, "unknown MessageStatus"),
    ],
)
def test_a_status_callback_we_cannot_use_is_an_error_naming_the_field(form, problem):
    with pytest.raises(CallbackError, match=problem):
        parse_status_callback(form)


def test_an_inbound_stop_parses_and_reads_as_an_opt_out():
    message = parse_inbound(MultiDict(load_fixture("twilio", "inbound_stop")))

    assert message == InboundMessage(
        from_=CUSTOMER, to=OUR_NUMBER, body="Stop", message_sid="SM9a8b7c6d5e4f30211203f4e5d6c7b8a9"
    )
    assert keyword_action(message.body) == "stop"


def test_an_inbound_picture_without_text_has_an_empty_body():
    form = {"MessageSid": "MM1", "From": CUSTOMER, "To": OUR_NUMBER, "NumMedia": "1"}

    assert parse_inbound(form).body == ""


def test_an_inbound_message_without_a_sender_is_an_error():
    with pytest.raises(CallbackError, match="missing From"):
        parse_inbound({"MessageSid": "SM1", "To": OUR_NUMBER, "Body": "hi"})


# --- Keywords ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["STOP", "stop", " Stop. ", "STOPALL", "unsubscribe", "Cancel!", "END", "quit", "REVOKE",
     "optout", "OPT OUT", "opt  out", "Opt-Out", "¡STOP!", "\"stop\"", "stop\n"],
)  # fmt: skip
def test_opt_out_keywords_stop(body):
    assert keyword_action(body) == "stop"


@pytest.mark.parametrize("body", ["START", "start", "Yes", "yes!", " UNSTOP "])
def test_opt_in_keywords_start(body):
    assert keyword_action(body) == "start"


@pytest.mark.parametrize(
    "body",
    ["STOP PLEASE", "please stop", "stop texting me", "Stop 🙏", "stopp",
     "yes please", "START NOW", "no", "HELP", "", "   ", "...", None],
)  # fmt: skip
def test_anything_more_than_the_keyword_is_not_one(body):
    assert keyword_action(body) is None


# --- E.164 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("612 34 56 78", "ES", "+34612345678"),
        ("+34 612 34 56 78", None, "+34612345678"),
        ("0034 612 345 678", "ES", "+34612345678"),
        ("91 123 45 67", "ES", "+34911234567"),
        ("8 (912) 345-67-89", "RU", "+79123456789"),
        ("+7 912 345-67-89", None, "+79123456789"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("+1 202-456-1111", "ES", "+12024561111"),  # a "+" number ignores the default region
    ],
)
def test_numbers_normalise_to_e164(raw, region, expected):
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("12345", "ES"),  # too short
        ("+34 912 34 56 7", None),  # one digit short
        ("+1 123 456 7890", None),  # possible length, but no US area code starts with 1
        ("612345678", None),  # no country code and no region to read it with
        ("911", "US"),  # a short code is not a number we can text
        ("not a number", "ES"),
        ("", "ES"),
        ("   ", "US"),
    ],
)
def test_invalid_or_impossible_numbers_are_none(raw, region):
    assert to_e164(raw, region) is None


# --- Segments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Your order has shipped", ("GSM-7", 1)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        # extension characters take two septets each
        ("€" * 80, ("GSM-7", 1)),
        ("€" * 81, ("GSM-7", 2)),
        ("a" * 158 + "{", ("GSM-7", 1)),
        ("a" * 159 + "}", ("GSM-7", 2)),
        ("[]{}^~|\\€", ("GSM-7", 1)),
        # ... and an escape sequence is never split across parts: 306 septets, 3 parts
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),
        # Spanish: é, ñ, ¡, ¿, ü are in the GSM-7 alphabet ...
        ("¡Señor Pérez! ¿Pingüino?", ("GSM-7", 1)),
        ("ñ" * 160, ("GSM-7", 1)),
        ("ESPAÑA, CAFÉ", ("GSM-7", 1)),
        # ... á, í, ó, ú are not: one of them makes the whole message UCS-2
        ("Tu pedido está en camino", ("UCS-2", 1)),
        ("Envío", ("UCS-2", 1)),
        ("Recogida en tu ubicación", ("UCS-2", 1)),
        ("Número", ("UCS-2", 1)),
        ("a" * 70 + "á", ("UCS-2", 2)),
        # Cyrillic
        ("Ваш заказ отправлен", ("UCS-2", 1)),
        ("Ж" * 70, ("UCS-2", 1)),
        ("Ж" * 71, ("UCS-2", 2)),
        ("Ж" * 134, ("UCS-2", 2)),
        ("Ж" * 135, ("UCS-2", 3)),
        # an emoji is two UTF-16 code units, and a pair is never split
        ("📦", ("UCS-2", 1)),
        ("📦" * 35, ("UCS-2", 1)),
        ("a" * 69 + "📦", ("UCS-2", 2)),
        ("a" * 66 + "📦" + "a" * 66, ("UCS-2", 3)),
        ("", ("GSM-7", 1)),
    ],
)
def test_segments(body, expected):
    assert segments(body) == expected
