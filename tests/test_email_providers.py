"""Email providers through their real interfaces.

SMTP: a real SMTP server (aiosmtpd) on loopback, with AUTH, STARTTLS and
implicit TLS under a certificate made here at test time. Postmark: a local
HTTP stand-in (werkzeug) that implements `POST /email/batch` as Postmark
documents it (tests/fixtures/postmark/README.md) and checks what we send.
The webhook side runs on the documented payloads in tests/fixtures/postmark/.
"""

from __future__ import annotations

import base64
import email
import email.policy
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from processes import WAIT_TIMEOUT, free_port, serve_wsgi
from werkzeug.wrappers import Request, Response

from notifications.email import build_mime, inline_css, message_id_for
from notifications.messages import EmailMessage, Outcome
from notifications.postmark import (
    DeliveryReport,
    PostmarkProvider,
    WebhookError,
    parse_webhook,
    verify_webhook_auth,
)
from notifications.smtp import SmtpProvider
from support import load_fixture

SMTP_USER = "careloop-mailer"
SMTP_PASSWORD = "s3cret-Pa55word-not-for-logs"
POSTMARK_TOKEN = "postmark-server-token-for-tests"

# AUTH without TLS is what some tests set up on purpose (on loopback).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def make_message(to: str = "ana@example.com", **changes) -> EmailMessage:
    base = EmailMessage(
        message_id=message_id_for("1:1", "secret", "careloop.example"),
        sender="alerts@shop.example",
        sender_name="Demo Store",
        to=to,
        subject="Your order #1001 has shipped",
        html="<p>Your order <b>#1001</b> is on its way.</p>",
        text="Your order #1001 is on its way.",
        headers={
            "List-Unsubscribe": "<https://careloop.example/u/tok123>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        reply_to="support@shop.example",
    )
    return replace(base, **changes)


# -- a certificate made for this run ------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client that verifies the server against our test CA (and its name)."""
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> Certificates:
    """A test CA and a server certificate for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CareLoop test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# -- a real SMTP server ---------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage
    peer: tuple
    helo: str | None
    tls: bool
    authenticated: bool


@dataclass
class Mailbox:
    """The aiosmtpd handler: keeps what it accepts, answers as told."""

    received: list[Received] = field(default_factory=list)
    peers: list[tuple] = field(default_factory=list)  # one per connection (EHLO hook)
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply
    data_replies: dict[str, str] = field(default_factory=dict)
    drop_on_rcpt: set[str] = field(default_factory=set)  # drop the connection once

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if session.peer not in self.peers:
            self.peers.append(session.peer)
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.drop_on_rcpt:
            self.drop_on_rcpt.discard(address)
            server.transport.abort()  # no answer at all: the line just goes dead
            return "250 OK"
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            if address in self.data_replies:
                return self.data_replies[address]
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=email.message_from_bytes(envelope.content, policy=email.policy.default),
                peer=session.peer,
                helo=session.host_name,
                tls=server.transport.get_extra_info("ssl_object") is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox

    @property
    def connections(self) -> int:
        return len(self.mailbox.peers)


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Starts aiosmtpd on a free loopback port; keyword arguments go to
    aiosmtpd (auth_required, tls_context, require_starttls, ssl_context...)."""
    controllers: list[Controller] = []

    def start(**options) -> SmtpServer:
        mailbox = Mailbox()
        port = free_port()
        controller = Controller(
            mailbox, hostname="127.0.0.1", port=port, ready_timeout=WAIT_TIMEOUT, **options
        )
        controller.start()
        controllers.append(controller)
        return SmtpServer("127.0.0.1", port, mailbox)

    yield start
    for controller in controllers:
        controller.stop()


def smtp_provider(server: SmtpServer, **options) -> SmtpProvider:
    settings = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "username": None,
        "password": None,
        "timeout_seconds": 5,
    }
    settings.update(options)
    return SmtpProvider(**settings)


# -- SMTP: content -------------------------------------------------------------


def test_smtp_sends_multipart_alternative_text_then_html_in_utf8(smtp_server):
    server = smtp_server()
    message = make_message()

    [result] = smtp_provider(server).send_batch([message])

    assert result.outcome is Outcome.SENT
    assert result.provider_id == message.message_id
    [got] = server.mailbox.received
    assert got.mail_from == "alerts@shop.example"
    assert got.rcpt_tos == ["ana@example.com"]
    mime = got.message
    assert mime.get_content_type() == "multipart/alternative"
    parts = list(mime.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert [part.get_content_charset() for part in parts] == ["utf-8", "utf-8"]
    assert parts[0].get_content().strip() == message.text
    assert parts[1].get_content().strip() == message.html


def test_smtp_message_is_7bit_with_short_lines_whatever_the_html(smtp_server):
    server = smtp_server()
    # Inlined CSS makes long lines; RFC 5322 allows 998 characters per line.
    long_line = "<td style='color: #333; padding: 4px'>Camión — доставка</td>" * 60
    message = make_message(html=f"<table><tr>{long_line}</tr></table>", text="ñ " * 800)

    smtp_provider(server).send_batch([message])

    mime = server.mailbox.received[0].message
    raw = mime.as_bytes(policy=email.policy.SMTP)
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    plain, rich = mime.iter_parts()
    assert rich.get_content().strip() == message.html
    assert plain.get_content().strip() == message.text.strip()


def test_smtp_message_carries_every_header(smtp_server):
    server = smtp_server()
    message = make_message()
    before = datetime.now(UTC).replace(microsecond=0)

    smtp_provider(server).send_batch([message])

    mime = server.mailbox.received[0].message
    assert parseaddr(str(mime["From"])) == ("Demo Store", "alerts@shop.example")
    assert str(mime["To"]) == "ana@example.com"
    assert str(mime["Subject"]) == "Your order #1001 has shipped"
    assert str(mime["Message-ID"]) == message.message_id
    assert str(mime["Reply-To"]) == "support@shop.example"
    assert str(mime["List-Unsubscribe"]) == "<https://careloop.example/u/tok123>"
    assert str(mime["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert str(mime["MIME-Version"]) == "1.0"
    sent_at = parsedate_to_datetime(str(mime["Date"]))
    assert before <= sent_at <= datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("sender_name", "subject", "text"),
    [
        (
            "Tienda Peña, S.L.",
            "¡Tu pedido está en camino! Señal de envío",
            "Hola Ana: tu pedido ya salió.",
        ),
        (
            "Магазин «Ромашка»",
            "Ваш заказ отправлен — номер №1001",
            "Здравствуйте! Ваш заказ в пути.",
        ),
    ],
    ids=["spanish", "russian"],
)
def test_smtp_non_ascii_names_subjects_and_bodies_round_trip(
    smtp_server, sender_name, subject, text
):
    server = smtp_server()
    html = f"<p>{text}</p>"
    message = make_message(sender_name=sender_name, subject=subject, text=text, html=html)

    [result] = smtp_provider(server).send_batch([message])

    assert result.outcome is Outcome.SENT
    mime = server.mailbox.received[0].message
    assert mime["From"].addresses[0].display_name == sender_name
    assert mime["From"].addresses[0].addr_spec == "alerts@shop.example"
    assert str(mime["Subject"]) == subject
    plain, rich = mime.iter_parts()
    assert plain.get_content().strip() == text
    assert rich.get_content().strip() == html
    # On the wire the headers are 7-bit (RFC 2047 encoded words).
    raw = mime.as_bytes(policy=email.policy.SMTP)
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()


def test_smtp_message_with_an_injected_header_is_permanent_and_the_rest_still_go(smtp_server):
    server = smtp_server()
    bad = make_message(to="bad@example.com", headers={"X-Tag": "x\r\nBcc: evil@example.com"})
    good = make_message(to="good@example.com")

    results = smtp_provider(server).send_batch([bad, good])

    assert [r.outcome for r in results] == [Outcome.PERMANENT, Outcome.SENT]
    assert "invalid message" in results[0].reason
    assert [got.rcpt_tos for got in server.mailbox.received] == [["good@example.com"]]


# -- SMTP: the session ---------------------------------------------------------


def test_smtp_batch_uses_one_connection_and_the_configured_helo_name(smtp_server):
    server = smtp_server()
    messages = [make_message(to=f"customer{i}@example.com") for i in range(5)]

    results = smtp_provider(server, local_hostname="mailer.careloop.test").send_batch(messages)

    assert [r.outcome for r in results] == [Outcome.SENT] * 5
    assert [r.provider_id for r in results] == [m.message_id for m in messages]
    assert server.connections == 1
    assert {got.peer for got in server.mailbox.received} == set(server.mailbox.peers)
    assert {got.helo for got in server.mailbox.received} == {"mailer.careloop.test"}


def test_smtp_batch_over_several_connections_sends_each_message_once_in_result_order(
    smtp_server,
):
    server = smtp_server()
    server.mailbox.rcpt_replies["refused@example.com"] = "550 5.1.1 No such user"
    server.mailbox.drop_on_rcpt.add("customer4@example.com")  # one lane reconnects
    messages = [make_message(to=f"customer{i}@example.com") for i in range(9)]
    messages.insert(5, make_message(to="refused@example.com"))

    results = smtp_provider(server, connections=3).send_batch(messages)

    outcomes = [r.outcome for r in results]
    assert outcomes == [Outcome.SENT] * 5 + [Outcome.PERMANENT] + [Outcome.SENT] * 4
    sent = [m for m, r in zip(messages, results, strict=True) if r.outcome is Outcome.SENT]
    assert [r.provider_id for r in results if r.outcome is Outcome.SENT] == [
        m.message_id for m in sent
    ]
    got = sorted(str(g.message["Message-ID"]) for g in server.mailbox.received)
    assert got == sorted(m.message_id for m in sent)  # each once, none lost to the drop
    assert server.connections == 4  # three lanes, one of which reconnected


def test_smtp_connections_setting_is_bounded():
    for bad in (0, 33):
        with pytest.raises(ValueError, match="connections"):
            SmtpProvider("127.0.0.1", 25, "none", None, None, 5, connections=bad)


def test_smtp_authenticates_when_a_username_is_configured(smtp_server):
    server = smtp_server(authenticator=authenticator, auth_required=True, auth_require_tls=False)

    [result] = smtp_provider(server, username=SMTP_USER, password=SMTP_PASSWORD).send_batch(
        [make_message()]
    )

    assert result.outcome is Outcome.SENT
    assert server.mailbox.received[0].authenticated is True


def test_smtp_wrong_password_is_transient_says_authentication_failed_and_leaks_nothing(
    smtp_server, caplog
):
    caplog.set_level(logging.DEBUG)
    server = smtp_server(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    wrong = SMTP_PASSWORD + "-wrong"

    results = smtp_provider(server, username=SMTP_USER, password=wrong).send_batch(
        [make_message(to="a@example.com"), make_message(to="b@example.com")]
    )

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert all(r.reason.startswith("authentication failed") for r in results)
    assert {r.error_code for r in results} == {"535"}
    assert not any(wrong in r.reason or SMTP_PASSWORD in r.reason for r in results)
    assert "authentication failed" in caplog.text
    assert SMTP_PASSWORD not in caplog.text
    assert server.mailbox.received == []


def test_smtp_reasons_never_echo_the_password(smtp_server):
    server = smtp_server(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    plain = base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode()
    server.mailbox.data_replies["echo@example.com"] = f"451 4.7.0 Try later ({plain})"
    server.mailbox.data_replies["echo2@example.com"] = f"451 4.7.0 bad pw {SMTP_PASSWORD}"

    results = smtp_provider(server, username=SMTP_USER, password=SMTP_PASSWORD).send_batch(
        [make_message(to="echo@example.com"), make_message(to="echo2@example.com")]
    )

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert [r.reason.count("[redacted]") for r in results] == [1, 1]
    assert not any(plain in r.reason or SMTP_PASSWORD in r.reason for r in results)


def test_smtp_starttls_with_a_trusted_certificate_then_auth(smtp_server, certificates):
    server = smtp_server(
        tls_context=certificates.server_context(),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,  # and, by default, only after TLS
    )
    provider = smtp_provider(
        server,
        security="starttls",
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        ssl_context=certificates.client_context(),
    )

    results = provider.send_batch(
        [make_message(to="a@example.com"), make_message(to="b@example.com")]
    )

    assert [r.outcome for r in results] == [Outcome.SENT] * 2
    assert [(got.tls, got.authenticated) for got in server.mailbox.received] == [(True, True)] * 2
    assert server.connections == 1


def test_smtp_starttls_refuses_an_untrusted_certificate(smtp_server, certificates):
    server = smtp_server(tls_context=certificates.server_context(), require_starttls=True)
    # The system's trust store does not know our test CA.
    provider = smtp_provider(server, security="starttls")

    [result] = provider.send_batch([make_message()])

    assert result.outcome is Outcome.TRANSIENT
    assert result.reason.startswith("TLS failed")
    assert "certificate verify failed" in result.reason
    assert server.mailbox.received == []


def test_smtp_starttls_is_never_skipped_when_the_server_does_not_offer_it(
    smtp_server, certificates
):
    server = smtp_server()  # no STARTTLS

    [result] = smtp_provider(
        server, security="starttls", ssl_context=certificates.client_context()
    ).send_batch([make_message()])

    assert result.outcome is Outcome.TRANSIENT
    assert result.reason == "TLS failed: the server does not offer STARTTLS"
    assert server.mailbox.received == []


def test_smtp_implicit_tls(smtp_server, certificates):
    server = smtp_server(ssl_context=certificates.server_context())

    [result] = smtp_provider(
        server, security="tls", ssl_context=certificates.client_context()
    ).send_batch([make_message()])

    assert result.outcome is Outcome.SENT
    assert server.mailbox.received[0].tls is True


# -- SMTP: classification ------------------------------------------------------


def test_smtp_550_recipient_is_permanent_and_the_others_in_the_batch_are_sent(smtp_server):
    server = smtp_server()
    server.mailbox.rcpt_replies["gone@example.com"] = "550 5.1.1 <gone@example.com>: User unknown"
    messages = [
        make_message(to=to) for to in ("a@example.com", "gone@example.com", "b@example.com")
    ]

    results = smtp_provider(server).send_batch(messages)

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.PERMANENT, Outcome.SENT]
    assert results[1].error_code == "550"
    assert results[1].reason == "recipient refused: 550 5.1.1 <gone@example.com>: User unknown"
    assert results[1].provider_id is None
    assert [got.rcpt_tos for got in server.mailbox.received] == [
        ["a@example.com"],
        ["b@example.com"],
    ]
    assert server.connections == 1


def test_smtp_451_recipient_is_transient(smtp_server):
    server = smtp_server()
    server.mailbox.rcpt_replies["busy@example.com"] = "451 4.3.0 Mailbox busy, try later"

    results = smtp_provider(server).send_batch(
        [make_message(to="busy@example.com"), make_message(to="ok@example.com")]
    )

    assert [r.outcome for r in results] == [Outcome.TRANSIENT, Outcome.SENT]
    assert results[0].error_code == "451"
    assert "Mailbox busy" in results[0].reason


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        ("554 5.7.1 Message rejected as spam", Outcome.PERMANENT),
        ("452 4.3.1 Out of storage", Outcome.TRANSIENT),
    ],
)
def test_smtp_reply_to_data_is_classified_by_its_code(smtp_server, reply, outcome):
    server = smtp_server()
    server.mailbox.data_replies["x@example.com"] = reply

    [result] = smtp_provider(server).send_batch([make_message(to="x@example.com")])

    assert result.outcome is outcome
    assert result.error_code == reply[:3]


def test_smtp_server_down_makes_every_message_transient():
    port = free_port()  # nothing listens there
    provider = SmtpProvider("127.0.0.1", port, "none", None, None, timeout_seconds=2)

    results = provider.send_batch([make_message(), make_message(to="b@example.com")])

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert all(r.reason.startswith("connection failed") for r in results)


def test_smtp_server_that_never_answers_is_transient_within_the_timeout():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel accepts the connection; nobody ever greets
        provider = SmtpProvider(
            "127.0.0.1", listener.getsockname()[1], "none", None, None, timeout_seconds=0.5
        )
        started = time.monotonic()
        results = provider.send_batch([make_message(), make_message(to="b@example.com")])
        elapsed = time.monotonic() - started

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert "timed out" in results[0].reason
    assert 0.4 <= elapsed < 2


def test_smtp_connection_dropped_mid_batch_reconnects_once_and_continues(smtp_server):
    server = smtp_server()
    server.mailbox.drop_on_rcpt.add("second@example.com")
    tos = ["first@example.com", "second@example.com", "third@example.com"]

    results = smtp_provider(server).send_batch([make_message(to=to) for to in tos])

    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert [got.rcpt_tos[0] for got in server.mailbox.received] == tos
    assert server.connections == 2


def test_smtp_second_drop_in_a_batch_leaves_the_rest_transient(smtp_server):
    server = smtp_server()
    server.mailbox.drop_on_rcpt.update({"second@example.com", "third@example.com"})
    tos = ["first@example.com", "second@example.com", "third@example.com", "fourth@example.com"]

    results = smtp_provider(server).send_batch([make_message(to=to) for to in tos])

    assert [r.outcome for r in results] == [
        Outcome.SENT,
        Outcome.SENT,
        Outcome.TRANSIENT,
        Outcome.TRANSIENT,
    ]
    assert results[2].reason.startswith("connection lost again")
    assert [got.rcpt_tos[0] for got in server.mailbox.received] == tos[:2]
    assert server.connections == 2


def test_smtp_421_closing_answer_is_transient_and_the_batch_goes_on_reconnected(smtp_server):
    server = smtp_server()
    server.mailbox.rcpt_replies["b@example.com"] = "421 4.3.2 Service shutting down"
    tos = ["a@example.com", "b@example.com", "c@example.com"]

    results = smtp_provider(server).send_batch([make_message(to=to) for to in tos])

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.TRANSIENT, Outcome.SENT]
    assert results[1].error_code == "421"
    assert server.connections == 2


# -- email.py ------------------------------------------------------------------


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_build_mime_dates_the_message_as_told():
    raw = build_mime(make_message(), date=datetime(2026, 11, 22, 13, 0, tzinfo=UTC))

    assert str(parsed(raw)["Date"]) == "Sun, 22 Nov 2026 13:00:00 +0000"


def test_build_mime_writes_crlf_lines_of_at_most_78_characters_in_its_headers():
    subject = "Your order #1001 from a store with a rather long name has shipped " * 3
    raw = build_mime(make_message(subject=subject.strip(), sender_name="Demo Store " * 8))

    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in header_block.split(b"\r\n")) <= 78
    mime = parsed(raw)
    assert str(mime["Subject"]) == subject.strip()
    assert mime["From"].addresses[0].display_name == ("Demo Store " * 8).strip()


@pytest.mark.parametrize(
    "subject",
    ["=?utf-8?q?not_an_encoded_word?=", "Naïve café — ваш заказ", "  padded  "],
    ids=["encoded-word-lookalike", "mixed-scripts", "spaces"],
)
def test_build_mime_subjects_read_back_exactly(subject):
    mime = parsed(build_mime(make_message(subject=subject)))

    assert str(mime["Subject"]).strip() == subject.strip()


def test_build_mime_bodies_keep_every_line_and_trailing_space():
    text = "line one  \nline two\r\n.\nFrom here\n\n" + "x" * 200
    html = "<p>a</p>\n<p>" + "ü" * 300 + "</p>"
    mime = parsed(build_mime(make_message(text=text, html=html)))

    # Text travels with CRLF line ends (RFC 2046 §4.1.1), whatever it had.
    plain, rich = (part.get_content().replace("\r\n", "\n") for part in mime.iter_parts())
    assert plain.rstrip("\n") == text.replace("\r\n", "\n")
    assert rich.rstrip("\n") == html


def test_build_mime_quoted_address_forms_are_kept_and_garbage_refused():
    raw = build_mime(make_message(to='"ana maria"@example.com'))

    assert parsed(raw)["To"].addresses[0].addr_spec == '"ana maria"@example.com'
    for bad in ["ana", "ana@", "@example.com", "ana@exa mple.com", "<ana@example.com>"]:
        with pytest.raises(ValueError):
            build_mime(make_message(to=bad))


def test_build_mime_international_domain_writes_utf8_headers_and_a_7bit_body():
    raw = build_mime(make_message(to="ana@bücher.example"))

    header_block, body = raw.split(b"\r\n\r\n", 1)
    assert "\r\nTo: ana@bücher.example\r\n".encode() in header_block
    assert body.isascii()


def test_smtp_international_address_goes_with_smtputf8_where_the_server_offers_it(smtp_server):
    offers, lacks = smtp_server(enable_SMTPUTF8=True), smtp_server(enable_SMTPUTF8=False)
    message = make_message(to="ana@bücher.example")

    [sent] = smtp_provider(offers).send_batch([message])
    [refused] = smtp_provider(lacks).send_batch([message])

    assert sent.outcome is Outcome.SENT
    assert offers.mailbox.received[0].rcpt_tos == ["ana@bücher.example"]
    assert refused.outcome is Outcome.PERMANENT
    assert "not supported" in refused.reason
    assert lacks.mailbox.received == []


@pytest.mark.parametrize(
    "headers",
    [{"From": "evil@example.com"}, {"Bad Name": "x"}, {"X-Ok": "line\nBcc: evil@example.com"}],
    ids=["reserved", "malformed-name", "injection"],
)
def test_build_mime_refuses_headers_that_would_rewrite_the_message(headers):
    with pytest.raises(ValueError):
        build_mime(make_message(headers=headers))


def test_message_ids_are_one_per_notification_rfc5322_ids_on_our_domain():
    ids = {message_id_for(f"4:{n}", "secret", "careloop.example") for n in range(2000)}

    assert len(ids) == 2000
    assert message_id_for("4:7", "secret", "careloop.example") in ids  # the same every time
    assert message_id_for("4:7", "another secret", "careloop.example") not in ids
    for message_id in list(ids)[:20]:
        assert message_id.startswith("<") and message_id.endswith("@careloop.example>")
        mime = email.message_from_string(
            f"Message-ID: {message_id}\n\n", policy=email.policy.default
        )
        assert str(mime["Message-ID"]) == message_id
        assert not mime["Message-ID"].defects
    with pytest.raises(ValueError):
        message_id_for("4:7", "secret", "not a domain")


def test_inline_css_moves_rules_into_style_attributes_and_keeps_media_queries(postmark):
    html = (
        "<html><head>"
        f'<link rel="stylesheet" href="{postmark.url}/remote.css">'
        "<style>p.note { color: #d00; }"
        " @media (max-width: 600px) { p { font-size: 18px; } }</style>"
        '</head><body><p class="note">Delayed</p></body></html>'
    )

    out = inline_css(html)

    assert '<p class="note" style="color: #d00;">Delayed</p>' in out
    assert "@media (max-width: 600px)" in out
    assert postmark.paths == []  # the remote stylesheet was not fetched


# -- a Postmark stand-in ---------------------------------------------------------


ERRORS = load_fixture("postmark", "api_errors")
DOCUMENTED_BATCH_ANSWER = load_fixture("postmark", "api_batch_response")


@dataclass
class PostmarkStandIn:
    """`POST /email/batch` as documented: checks the token and JSON headers
    and each message's shape; answers per message by recipient."""

    url: str = ""
    batches: list[list[dict]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    answer_with: tuple[int, object] | None = None  # (status, JSON body or raw text)
    documented_answer: bool = False
    delay: float = 0
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.paths.append(request.path)
        if request.path == "/webhook":
            self.headers.append(dict(request.headers))
            return Response(status=200)(environ, start_response)
        return self.batch(request)(environ, start_response)

    def batch(self, request: Request) -> Response:
        if request.method != "POST" or request.path != "/email/batch":
            return Response(status=404)
        self.headers.append(dict(request.headers))
        if self.delay:
            self.release.wait(self.delay)
        if self.answer_with is not None:
            status, body = self.answer_with
            if isinstance(body, str):
                return Response(body, status=status, content_type="text/html")
            return answer(status, body)
        if request.headers.get("X-Postmark-Server-Token") != POSTMARK_TOKEN:
            return answer(ERRORS["bad_token"]["status"], ERRORS["bad_token"]["body"])
        if (
            request.headers.get("Accept") != "application/json"
            or request.mimetype != "application/json"
        ):
            return answer(422, {"ErrorCode": 409, "Message": "JSON required."})
        messages = json.loads(request.get_data())
        if not isinstance(messages, list):
            return answer(422, {"ErrorCode": 402, "Message": "Invalid JSON."})
        if len(messages) > 500:
            return answer(422, {"ErrorCode": 410, "Message": "Too many batch messages."})
        self.batches.append(messages)
        if self.documented_answer:
            assert len(messages) == len(DOCUMENTED_BATCH_ANSWER)
            return answer(200, DOCUMENTED_BATCH_ANSWER)
        return answer(200, [self.one(message) for message in messages])

    def one(self, message: dict) -> dict:
        for name in ("From", "To", "Subject", "MessageStream"):
            if not isinstance(message.get(name), str) or not message[name]:
                return {"ErrorCode": 300, "Message": f"Missing or invalid '{name}'."}
        if not (message.get("TextBody") or message.get("HtmlBody")):
            return {
                "ErrorCode": 300,
                "Message": "Provide either email TextBody or HtmlBody or both.",
            }
        if message["From"].endswith("<unverified@shop.example>"):
            return {
                "ErrorCode": 300,
                "Message": "Invalid 'From' address: 'unverified@shop.example' is not a "
                "verified sender signature.",
            }
        to = message["To"]
        if "." not in to.rpartition("@")[2]:  # Postmark wants a dotted domain
            return {**ERRORS["invalid_email_request"], "To": to}
        if to.startswith("inactive@"):
            return {**ERRORS["inactive_recipient"], "To": to}
        return {
            "ErrorCode": 0,
            "Message": "OK",
            "MessageID": str(uuid.uuid4()),
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "To": to,
        }


def answer(status: int, body: object) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


@pytest.fixture
def postmark() -> Iterator[PostmarkStandIn]:
    stand_in = PostmarkStandIn()
    with serve_wsgi(stand_in) as url:
        stand_in.url = url
        yield stand_in
        stand_in.release.set()


def postmark_provider(stand_in: PostmarkStandIn, **options) -> PostmarkProvider:
    settings = {"server_token": POSTMARK_TOKEN, "api_url": stand_in.url, "timeout_seconds": 5}
    settings.update(options)
    return PostmarkProvider(**settings)


# -- Postmark: sending -----------------------------------------------------------


def test_postmark_documented_batch_answer_gives_each_message_its_message_id(postmark):
    postmark.documented_answer = True

    results = postmark_provider(postmark).send_batch(
        [make_message(to="receiver1@example.com"), make_message(to="receiver2@example.com")]
    )

    assert [r.outcome for r in results] == [Outcome.SENT] * 2
    assert [r.provider_id for r in results] == [
        "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
        "e2ecbbfc-fe12-463d-b933-9fe22915106d",
    ]
    assert len(postmark.batches) == 1


def test_postmark_request_has_the_documented_shape(postmark):
    message = make_message(sender_name="Tienda Peña, S.L.", subject="Ваш заказ отправлен")

    [result] = postmark_provider(postmark, message_stream="alerts").send_batch([message])

    assert result.outcome is Outcome.SENT
    [[sent]] = postmark.batches
    assert parseaddr(sent["From"]) == ("Tienda Peña, S.L.", "alerts@shop.example")
    assert sent["To"] == "ana@example.com"
    assert sent["Subject"] == "Ваш заказ отправлен"
    assert sent["TextBody"] == message.text
    assert sent["HtmlBody"] == message.html
    assert sent["ReplyTo"] == "support@shop.example"
    assert sent["MessageStream"] == "alerts"
    [headers] = postmark.headers
    assert headers["X-Postmark-Server-Token"] == POSTMARK_TOKEN
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"


def test_postmark_passes_list_unsubscribe_headers_through(postmark):
    postmark_provider(postmark).send_batch([make_message()])

    [[sent]] = postmark.batches
    assert sent["Headers"] == [
        {"Name": "List-Unsubscribe", "Value": "<https://careloop.example/u/tok123>"},
        {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
    ]


def test_postmark_inactive_recipient_is_permanent_and_unsubscribed(postmark):
    results = postmark_provider(postmark).send_batch(
        [make_message(to="a@example.com"), make_message(to="inactive@example.com")]
    )

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.PERMANENT]
    assert results[1].unsubscribed is True
    assert results[1].error_code == "406"
    assert "inactive" in results[1].reason
    assert results[0].unsubscribed is False


def test_postmark_invalid_email_request_is_permanent_not_unsubscribed(postmark):
    results = postmark_provider(postmark).send_batch(
        [make_message(to="john@localhost"), make_message(to="b@example.com")]
    )

    assert [r.outcome for r in results] == [Outcome.PERMANENT, Outcome.SENT]
    assert results[0].error_code == "300"
    assert results[0].unsubscribed is False


def test_postmark_unverified_sender_is_transient_because_it_is_our_configuration(postmark):
    [result] = postmark_provider(postmark).send_batch(
        [make_message(sender="unverified@shop.example")]
    )

    assert result.outcome is Outcome.TRANSIENT
    assert result.error_code == "300"
    assert "verified sender signature" in result.reason


def test_postmark_bad_token_is_transient_authentication_failed(postmark):
    results = postmark_provider(postmark, server_token="wrong-token").send_batch(
        [make_message(), make_message(to="b@example.com")]
    )

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert all(r.reason.startswith("authentication failed") for r in results)
    assert {r.error_code for r in results} == {"10"}
    assert not any("wrong-token" in r.reason for r in results)
    assert postmark.batches == []


@pytest.mark.parametrize(
    ("error", "reason_start"),
    [
        ("rate_limited", "rate limited"),
        ("internal_error", "request refused"),
        ("unavailable", "request refused"),
    ],
)
def test_postmark_rate_limit_and_server_errors_are_transient(postmark, error, reason_start):
    postmark.answer_with = (ERRORS[error]["status"], ERRORS[error]["body"])

    results = postmark_provider(postmark).send_batch(
        [make_message(), make_message(to="b@x.example")]
    )

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert all(r.reason.startswith(reason_start) for r in results)
    assert f"HTTP {ERRORS[error]['status']}" in results[0].reason


def test_postmark_non_json_error_page_is_transient(postmark):
    postmark.answer_with = (502, "<html><body>Bad gateway</body></html>")

    [result] = postmark_provider(postmark).send_batch([make_message()])

    assert result.outcome is Outcome.TRANSIENT
    assert result.error_code == "502"


def test_postmark_timeout_is_transient_within_the_timeout(postmark):
    postmark.delay = 3

    started = time.monotonic()
    [result] = postmark_provider(postmark, timeout_seconds=0.3).send_batch([make_message()])
    elapsed = time.monotonic() - started

    assert result.outcome is Outcome.TRANSIENT
    assert result.reason == "timed out after 0.3 s"
    assert elapsed < 1.5


def test_postmark_unreachable_is_transient():
    provider = PostmarkProvider(POSTMARK_TOKEN, api_url=f"http://127.0.0.1:{free_port()}")

    [result] = provider.send_batch([make_message()])

    assert result.outcome is Outcome.TRANSIENT
    assert result.reason.startswith("connection failed")


def test_postmark_splits_large_batches_at_the_documented_500_and_keeps_order(postmark):
    messages = [make_message(to=f"c{i}@example.com") for i in range(501)]

    results = postmark_provider(postmark).send_batch(messages)

    assert [len(batch) for batch in postmark.batches] == [500, 1]
    assert [r.outcome for r in results] == [Outcome.SENT] * 501
    assert len({r.provider_id for r in results}) == 501
    assert [m["To"] for batch in postmark.batches for m in batch] == [m.to for m in messages]


def test_postmark_message_with_an_injected_header_is_permanent_and_not_sent(postmark):
    bad = make_message(to="bad@example.com", headers={"X-Tag": "x\nBcc: evil@example.com"})

    results = postmark_provider(postmark).send_batch([bad, make_message(to="ok@example.com")])

    assert [r.outcome for r in results] == [Outcome.PERMANENT, Outcome.SENT]
    assert [m["To"] for m in postmark.batches[0]] == ["ok@example.com"]


# -- Postmark: webhooks ----------------------------------------------------------


def test_parse_delivery_webhook():
    report = parse_webhook(load_fixture("postmark", "webhook_delivery"))

    assert report == DeliveryReport(
        provider_id="883953f4-6105-42a2-a16a-77a8eac79483",
        status="delivered",
        permanent=False,
        recipient="john@example.com",
        detail="Test delivery webhook details",
        occurred_at=datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC),
    )


def test_parse_hard_bounce_webhook_is_permanent():
    report = parse_webhook(load_fixture("postmark", "webhook_bounce_hard"))

    assert report == DeliveryReport(
        provider_id="883953f4-6105-42a2-a16a-77a8eac79483",
        status="bounced",
        permanent=True,
        recipient="john@example.com",
        detail=(
            "HardBounce: The server was unable to deliver your message "
            "(ex: unknown user, mailbox not found).: Test bounce details"
        ),
        occurred_at=datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC),
    )


def test_parse_soft_bounce_webhook_is_not_permanent():
    report = parse_webhook(load_fixture("postmark", "webhook_bounce_soft"))

    assert report.status == "bounced"
    assert report.permanent is False
    assert report.recipient == "full-mailbox@example.com"
    assert report.detail.startswith("SoftBounce: Unable to temporarily deliver")
    assert report.occurred_at == datetime(2019, 11, 5, 21, 40, 12, 123456, tzinfo=UTC)


def test_parse_bad_email_address_bounce_is_permanent_by_its_type_alone():
    payload = load_fixture("postmark", "webhook_bounce_bad_email_address")
    assert payload["Inactive"] is False

    report = parse_webhook(payload)

    assert (report.status, report.permanent) == ("bounced", True)


def test_parse_soft_bounce_that_postmark_deactivated_is_permanent():
    payload = {**load_fixture("postmark", "webhook_bounce_soft"), "Inactive": True}

    assert parse_webhook(payload).permanent is True


def test_parse_spam_complaint_webhook():
    report = parse_webhook(load_fixture("postmark", "webhook_spam_complaint"))

    assert report == DeliveryReport(
        provider_id="00000000-0000-0000-0000-000000000000",
        status="complained",
        permanent=True,
        recipient="john@example.com",
        detail="SpamComplaint: Test spam complaint details",
        occurred_at=datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC),
    )


def test_parse_webhook_ignores_other_record_types():
    payload = {
        "RecordType": "Open",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Recipient": "john@example.com",
        "ReceivedAt": "2019-11-05T16:33:54.9070259Z",
    }

    assert parse_webhook(payload) is None


@pytest.mark.parametrize(
    ("fixture", "change", "field_name"),
    [
        ("webhook_delivery", {"MessageID": None}, "MessageID"),
        ("webhook_bounce_hard", {"Email": ""}, "Email"),
        ("webhook_bounce_hard", {"BouncedAt": "yesterday"}, "BouncedAt"),
        ("webhook_delivery", {"DeliveredAt": None}, "DeliveredAt"),
    ],
)
def test_parse_webhook_names_the_field_it_cannot_use(fixture, change, field_name):
    payload = {**load_fixture("postmark", fixture), **change}

    with pytest.raises(WebhookError, match=field_name):
        parse_webhook(payload)


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (basic(b"postmark-hook:pw-Zx81_q"), True),
        ("basic " + base64.b64encode(b"postmark-hook:pw-Zx81_q").decode(), True),
        (basic(b"postmark-hook:pw-Zx81_Q"), False),
        (basic(b"postmark-hoo:pw-Zx81_q"), False),
        (basic(b"postmark-hook:pw-Zx81_q "), False),
        (basic(b"postmark-hookpw-Zx81_q"), False),
        ("Bearer " + base64.b64encode(b"postmark-hook:pw-Zx81_q").decode(), False),
        ("Basic not*base64", False),
        ("", False),
        (None, False),
    ],
)
def test_verify_webhook_auth(header, accepted):
    assert verify_webhook_auth("postmark-hook", "pw-Zx81_q", header) is accepted


def test_verify_webhook_auth_with_no_configured_credentials_accepts_nothing():
    assert verify_webhook_auth("", "", basic(b":")) is False


def test_credentials_in_the_webhook_url_arrive_as_basic_auth_we_accept(postmark):
    # What Postmark does with https://<user>:<password>@host/path: any HTTP client
    # turns the URL's credentials into an Authorization header.
    host = postmark.url.removeprefix("http://")
    response = requests.post(
        f"http://postmark-hook:pw-Zx81_q@{host}/webhook",
        json=load_fixture("postmark", "webhook_delivery"),
        timeout=5,
    )

    assert response.status_code == 200
    [headers] = postmark.headers
    assert verify_webhook_auth("postmark-hook", "pw-Zx81_q", headers["Authorization"]) is True
    assert verify_webhook_auth("postmark-hook", "other", headers["Authorization"]) is False
