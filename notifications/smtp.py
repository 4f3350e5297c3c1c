"""Email over SMTP (RFC 5321) with the standard library's `smtplib`.

A batch is split over `connections` connections (SMTP_CONNECTIONS), each in
a thread of its own: every message costs four round trips (MAIL, RCPT,
DATA, the content), and a relay takes milliseconds to answer each, so one
connection at a time would leave the worker waiting most of the time. Per
connection: connect (implicit TLS, RFC 8314, or plain then STARTTLS, RFC
3207), EHLO, AUTH when a username is configured, then one MAIL/RCPT/DATA
transaction per message, and QUIT. Every socket operation has the
configured timeout.

Classification, per message (RFC 5321 §4.2.1: 2yz success, 4yz transient
negative, 5yz permanent negative):

- accepted (2xx) -> SENT, `provider_id` = the message's own Message-ID (an
  SMTP relay gives no id of its own that the outbox could match later);
- RCPT or DATA answered 5xx -> PERMANENT; 4xx -> TRANSIENT; the reply code is
  the `error_code`. MAIL FROM refused is about the sender, i.e. our
  configuration, so TRANSIENT, except 552 (the message exceeds the server's
  size limit), which is PERMANENT;
- a message that cannot be built (e.g. a CR/LF in a header) -> PERMANENT;
- no connection, TLS failure, or authentication refused -> every message not
  yet sent TRANSIENT (our configuration or the server's state, never the
  recipient's fault); the reason says "authentication failed" for AUTH;
- the connection drops mid-batch (or the server closes it with 421) -> one
  reconnect, and that connection's share of the batch goes on from the
  message in flight (the outbox delivers at least once); a second drop makes
  the rest of its share TRANSIENT.

The password is never logged and never put in a reason: reasons are built
from the server's replies, and any echo of the credentials is scrubbed.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, cast

from app.config import SMTP_MAX_CONNECTIONS as MAX_CONNECTIONS
from notifications.email import build_mime
from notifications.messages import EmailMessage, Outcome, SendResult

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
_SECURITY = ("starttls", "tls", "none")


class _ConnectionFailed(Exception):
    """No usable session: every message not yet sent is TRANSIENT."""

    def __init__(self, reason: str, error_code: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.error_code = error_code


class _Dropped(Exception):
    """The connection broke while a message was in flight."""


@dataclass
class _Pending:
    index: int
    message: EmailMessage
    data: bytes  # the whole message, as SMTP DATA sends it


class SmtpProvider:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        security: Security,
        username: str | None,
        password: str | None,
        timeout_seconds: float,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connections: int = 1,
    ):
        if security not in _SECURITY:
            raise ValueError(f"security must be one of {', '.join(_SECURITY)}, not {security!r}")
        if not 0 < port < 65536:
            raise ValueError(f"invalid port {port}")
        if not timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        if username and not password:
            raise ValueError("a username needs a password")
        if not 1 <= connections <= MAX_CONNECTIONS:
            raise ValueError(f"connections must be between 1 and {MAX_CONNECTIONS}")
        self.connections = connections
        self.host = host
        self.port = port
        self.security = security
        self.username = username or None
        self._password = password
        self.timeout_seconds = timeout_seconds
        self.local_hostname = local_hostname
        # Certificate and host name verified, TLS 1.2 at least.
        self._ssl_context = ssl_context or ssl.create_default_context()

    def __repr__(self) -> str:
        return (
            f"SmtpProvider(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"username={self.username!r})"
        )

    def send_batch(self, messages: list[EmailMessage]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        pending: list[_Pending] = []
        for index, message in enumerate(messages):
            try:
                pending.append(_Pending(index, message, build_mime(message)))
            except ValueError as exc:
                results[index] = SendResult(Outcome.PERMANENT, reason=f"invalid message: {exc}")
        lanes = [pending[start :: self.connections] for start in range(self.connections)]
        lanes = [lane for lane in lanes if lane]
        if len(lanes) == 1:
            self._deliver(lanes[0], results)
        elif lanes:
            # Each lane fills its own slots of `results`; the threads wait on
            # the server, not on each other.
            with ThreadPoolExecutor(len(lanes), thread_name_prefix="smtp") as pool:
                for done in [pool.submit(self._deliver, lane, results) for lane in lanes]:
                    done.result()
        return cast(list[SendResult], results)  # every slot is filled by now

    # -- the session -------------------------------------------------------

    def _deliver(self, pending: list[_Pending], results: list[SendResult | None]) -> None:
        reconnects_left = 1
        conn: smtplib.SMTP | None = None
        position = 0
        try:
            try:
                conn = self._connect()
            except _ConnectionFailed as failure:
                self._fail_rest(pending, position, results, failure)
                return
            while position < len(pending):
                item = pending[position]
                try:
                    results[item.index] = self._send_one(conn, item)
                    position += 1
                    if conn.sock is not None or position == len(pending):
                        continue
                    # The server closed the session with its answer (421).
                    problem = "the server closed the connection"
                except _Dropped as exc:
                    problem = str(exc)
                if reconnects_left == 0:
                    failure = _ConnectionFailed(f"connection lost again: {problem}")
                    self._fail_rest(pending, position, results, failure)
                    return
                reconnects_left -= 1
                log.info("smtp %s:%s: %s; reconnecting once", self.host, self.port, problem)
                _close(conn)
                try:
                    conn = self._connect()
                except _ConnectionFailed as failure:
                    self._fail_rest(pending, position, results, failure)
                    return
        finally:
            if conn is not None:
                _close(conn, polite=True)

    def _fail_rest(
        self,
        pending: list[_Pending],
        start: int,
        results: list[SendResult | None],
        failure: _ConnectionFailed,
    ) -> None:
        log.warning(
            "smtp %s:%s: %s (%d message(s) left for a retry)",
            self.host,
            self.port,
            failure.reason,
            len(pending) - start,
        )
        for item in pending[start:]:
            results[item.index] = SendResult(
                Outcome.TRANSIENT, reason=failure.reason, error_code=failure.error_code
            )

    def _connect(self) -> smtplib.SMTP:
        try:
            if self.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeout_seconds,
                    context=self._ssl_context,
                )
            else:
                conn = smtplib.SMTP(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeout_seconds,
                )
        except ssl.SSLError as exc:
            raise _ConnectionFailed(self._scrub(f"TLS failed: {_describe(exc)}")) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise _ConnectionFailed(self._scrub(f"connection failed: {_describe(exc)}")) from exc
        try:
            self._open_session(conn)
        except BaseException:
            _close(conn)
            raise
        return conn

    def _open_session(self, conn: smtplib.SMTP) -> None:
        try:
            conn.ehlo()
            if self.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise _ConnectionFailed("TLS failed: the server does not offer STARTTLS")
                conn.starttls(context=self._ssl_context)
                conn.ehlo()
        except ssl.SSLError as exc:
            raise _ConnectionFailed(self._scrub(f"TLS failed: {_describe(exc)}")) from exc
        except smtplib.SMTPResponseException as exc:
            raise _ConnectionFailed(
                self._scrub(f"connection failed: {_describe(exc)}"), str(exc.smtp_code)
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise _ConnectionFailed(self._scrub(f"connection failed: {_describe(exc)}")) from exc
        if self.username is None:
            return
        try:
            conn.login(self.username, self._password or "")
        except smtplib.SMTPResponseException as exc:  # 535 and friends
            raise _ConnectionFailed(
                self._scrub(f"authentication failed: {_describe(exc)}"), str(exc.smtp_code)
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise _ConnectionFailed(self._scrub(f"connection failed: {_describe(exc)}")) from exc
        except smtplib.SMTPException as exc:  # no AUTH offered, no common mechanism
            raise _ConnectionFailed(self._scrub(f"authentication failed: {exc}")) from exc
        except OSError as exc:
            raise _ConnectionFailed(self._scrub(f"connection failed: {_describe(exc)}")) from exc

    # -- one message -------------------------------------------------------

    def _send_one(self, conn: smtplib.SMTP, item: _Pending) -> SendResult:
        message = item.message
        # Addresses that are not ASCII need the server's SMTPUTF8 (RFC 6531);
        # smtplib raises SMTPNotSupportedError when it is not offered.
        international = not (message.sender + message.to).isascii()
        options = ["SMTPUTF8", "BODY=8BITMIME"] if international else []
        try:
            conn.sendmail(message.sender, [message.to], item.data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(message.to) or next(iter(exc.recipients.values()))
            return self._by_code(code, text, "recipient refused")
        except smtplib.SMTPSenderRefused as exc:
            reason = self._scrub(f"sender refused: {_describe(exc)}")
            outcome = Outcome.PERMANENT if exc.smtp_code == 552 else Outcome.TRANSIENT
            return SendResult(outcome, reason=reason, error_code=str(exc.smtp_code))
        except smtplib.SMTPDataError as exc:
            return self._by_code(exc.smtp_code, exc.smtp_error, "message refused")
        except smtplib.SMTPNotSupportedError as exc:
            # An internationalized address that this server cannot take (SMTPUTF8).
            return SendResult(Outcome.PERMANENT, reason=f"not supported by the server: {exc}")
        except smtplib.SMTPServerDisconnected as exc:
            raise _Dropped(self._scrub(_describe(exc))) from exc
        except smtplib.SMTPResponseException as exc:
            return self._by_code(exc.smtp_code, exc.smtp_error, "refused")
        except OSError as exc:  # reset, timeout, TLS error on a live session
            raise _Dropped(self._scrub(_describe(exc))) from exc
        return SendResult(Outcome.SENT, provider_id=message.message_id)

    def _by_code(self, code: int, text: bytes | str, what: str) -> SendResult:
        reason = self._scrub(f"{what}: {code} {_text(text)}".rstrip())
        if 200 <= code < 300:  # pragma: no cover - smtplib raises only on failures
            return SendResult(Outcome.SENT, reason=reason)
        outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TRANSIENT
        return SendResult(outcome, reason=reason, error_code=str(code))

    def _scrub(self, text: str) -> str:
        """`text` without the password, in clear or in the AUTH PLAIN/LOGIN
        encodings a server might echo back."""
        if not self._password:
            return text
        user = self.username or ""
        secrets = {
            self._password,
            base64.b64encode(self._password.encode()).decode(),
            base64.b64encode(f"\0{user}\0{self._password}".encode()).decode(),
        }
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
        return text


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(value.split())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}".rstrip()
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _close(conn: smtplib.SMTP, *, polite: bool = False) -> None:
    if polite and conn.sock is not None:
        try:
            conn.quit()
            return
        except (smtplib.SMTPException, OSError):
            pass
    conn.close()
