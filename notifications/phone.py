"""Phone numbers and text-message bodies: E.164 normalisation, SMS segment
counting, and the opt-out / opt-in keywords of inbound replies.

Sources (see also tests/fixtures/twilio/README.md):

- E.164 parsing and validation: the `phonenumbers` package (Google's
  libphonenumber metadata), https://pypi.org/project/phonenumbers/.
- Alphabets: 3GPP TS 23.038 (GSM 03.38) default alphabet and its extension
  table, as reprinted in e.g. https://developers.sinch.com/docs/sms/smpp/message-encoding
  and https://doc.lox24.eu/info/encoding-and-number-of-characters/. A GSM-7
  message holds 160 septets, 153 per part once concatenated (the User Data
  Header takes the rest); an extension character is an escape plus a code,
  two septets, and is never split across parts. UCS-2 holds 70 UTF-16 code
  units, 67 per part; a character outside the Basic Multilingual Plane (most
  emoji) is a surrogate pair, two units, also never split.
- Keywords: Twilio's default opt-out handling, "Twilio support for opt-out
  keywords (SMS STOP filtering)",
  https://help.twilio.com/articles/223134027 (formerly on support.twilio.com),
  and https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out: STOP,
  STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT stop; START, YES,
  UNSTOP start again; "only single-word messages will trigger the block"
  ("STOP PLEASE" does not).
"""

from __future__ import annotations

import unicodedata
from typing import Literal

import phonenumbers

# --- E.164 -------------------------------------------------------------------


def to_e164(raw: str, default_region: str | None) -> str | None:
    """`raw` as an E.164 string ("+34612345678"), or None when it is not a
    valid number. `default_region` (ISO 3166 alpha-2, e.g. "ES") is how a
    number written without its country code is read; with None, only numbers
    written with "+" and a country code are accepted."""
    if not raw or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- Segments ----------------------------------------------------------------

# 3GPP TS 23.038 default alphabet: one septet each. Note what is *not* here:
# á í ó ú (only à, è, é, ì, ò, ù among the accented lower-case vowels), ç
# (only the capital Ç), and the typographic quotes and dashes.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table, reached with an escape: two septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"
Encoding = Literal["GSM-7", "UCS-2"]

_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


def segments(body: str) -> tuple[Encoding, int]:
    """The encoding a body needs and the number of SMS segments it takes.

    GSM-7 when every character is in the default alphabet or its extension
    table, else UCS-2 (the whole message switches: one "á" makes it UCS-2).
    An empty body is still one (empty) message."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
        encoding: Encoding = GSM7
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in body]
    else:
        encoding = UCS2
        costs = [len(ch.encode("utf-16-le")) // 2 for ch in body]
    single, per_part = _LIMITS[encoding]
    if sum(costs) <= single:
        return encoding, 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:  # an escape sequence or surrogate pair stays whole
            parts, used = parts + 1, 0
        used += cost
    return encoding, parts


# --- Keywords ----------------------------------------------------------------

STOP_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
START_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})


def _is_edge(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] == "P"


def keyword_action(body: str | None) -> Literal["stop", "start"] | None:
    """ "stop" or "start" when the whole inbound message is one of Twilio's
    default opt-out or opt-in keywords, else None.

    Case is ignored, and so are whitespace and punctuation around the word
    ("Stop.", " stop! "). "OPT OUT" (and "OPT-OUT") count as OPTOUT: reading
    an opt-out too eagerly only keeps us from texting someone, while missing
    one texts a person who said stop. Anything more ("STOP PLEASE", "stop 🙏")
    is not a keyword, as with Twilio."""
    if not body:
        return None
    start, end = 0, len(body)
    while start < end and _is_edge(body[start]):
        start += 1
    while end > start and _is_edge(body[end - 1]):
        end -= 1
    words = body[start:end].upper().replace("-", " ").split()
    if words == ["OPT", "OUT"]:
        return "stop"
    if len(words) != 1:
        return None
    word = words[0]
    if word in STOP_KEYWORDS:
        return "stop"
    if word in START_KEYWORDS:
        return "start"
    return None
