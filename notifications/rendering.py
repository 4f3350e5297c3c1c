"""Customer notifications, rendered from templates per kind, channel and locale.

Our templates live on disk: `templates/notifications/<kind>/<locale>/` holds
`subject.txt`, `email.html` and `email.txt` (email) and `sms.txt` (SMS); the
HTML ones extend `templates/notifications/layout.html`. A locale is looked up
as given ("es-MX"), then its language ("es"), then the shop's default locale
the same way, then "en". Dates and amounts are formatted with Babel for the
locale asked for when the template found is in its language, otherwise for
the template's own locale (a French customer of an English shop reads
"Nov 27, 2026", not "27 nov. 2026" in an English sentence).

A shop may save its own template for a kind, channel and locale
(`TemplateSource`). Those are untrusted: they are rendered in Jinja's
immutable sandbox, with no loader and no globals, only the context names of
their kind and our two filters, and only constructs that cannot multiply
their own output (no `{% set %}`, macros, calls, arithmetic, includes or
nested loops), so that the output bound (100 KB) also bounds memory. Time
is bounded before parsing (tags, their parts, nesting and number literals,
checked on the tokens, since Jinja parses and compiles by recursion) and
while rendering (a budget of loop steps). In HTML, links other than http,
https and mailto are dropped. `validate_override` says what is wrong with
one, with lines, before it is saved; `render` refuses a bad one with
`OverrideRefused`, a `jinja2.TemplateError`.

Rendering does no I/O besides reading our own templates: CSS is inlined with
remote and local stylesheets switched off.
"""

from __future__ import annotations

import contextvars
import functools
import html as htmlmodule
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
    pass_context,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from app.config import ROOT
from notifications.email import inline_css

TEMPLATE_DIR = ROOT / "templates" / "notifications"
CHANNELS = ("email", "sms")
DEFAULT_LOCALE = "en"
MAX_OUTPUT_BYTES = 100_000  # per rendered part; Gmail clips messages over ~102 KB
MAX_SOURCE_CHARS = 100_000  # per field of a shop's template
# Jinja parses and compiles by recursion, one level of Python stack per level
# of nesting (Python stops at 1000); real templates nest a handful deep.
MAX_NESTING = 20  # brackets within an expression; blocks within blocks
MAX_TAG_TOKENS = 200  # words, names, operators and literals in one {{ }} or {% %}
# Checking, parsing and compiling cost ~70 µs per tag and ~20 µs per part of
# one: these keep a save or a preview near 0.1 s of CPU (5,800 tags took
# 0.5 s; 1,000 of 25 parts 0.57 s). Real templates have under 100 tags.
MAX_TAGS = 1000
MAX_TOKENS = 5000  # in all the tags of a template
MAX_TREE_DEPTH = 50  # the parsed template, from the top to its deepest value
MAX_NUMBER_CHARS = 20  # Python refuses to parse an integer over 4,300 digits
# Loop iterations times the size of the loop's body: what bounds the CPU time
# of a render that outputs little (the output bound covers one that outputs a lot).
MAX_RENDER_STEPS = 200_000
MAX_SMS_CHARS = 1600  # the most an SMS provider (Twilio) accepts in one message

# The context names each kind's templates may use. A kind is data: add its
# names here, its sample to _SAMPLES and its templates on disk.
KINDS: dict[str, frozenset[str]] = {
    "shipping": frozenset(
        {
            "shop_name",
            "customer_first_name",  # None when unknown: a neutral greeting
            "order_name",
            "carrier",
            "tracking_number",
            "tracking_url",  # linked only when it is https
            "estimated_delivery",  # datetime or None
            "total",  # Decimal
            "currency",  # ISO 4217
            "unsubscribe_url",  # None for transactional messages
        }
    ),
    # A birthday greeting (`app.birthdays`): marketing, so always with an
    # unsubscribe link; the code and its terms only when the shop gives one.
    "birthday": frozenset(
        {
            "shop_name",
            "customer_first_name",
            "discount_code",  # None: no code this time
            "discount_percent",  # int, with a code
            "discount_ends_at",  # datetime, with a code
            "unsubscribe_url",
        }
    ),
    # After a rating of 1 or 2, when the shop turns it on (app.recovery).
    "recovery": frozenset(
        {
            "shop_name",
            "customer_first_name",
            "discount_code",
            "discount_percent",
            "discount_ends_at",
            "unsubscribe_url",
        }
    ),
    # The CSAT survey of a closed ticket (app.surveys), and its one reminder.
    "survey": frozenset(
        {
            "shop_name",
            "customer_first_name",
            "order_name",
            "total",
            "currency",
            "survey_url",  # the signed link; "?r=1".."?r=5" pre-selects a rating
            "ticket_subject",
            "reminder",  # True for the reminder
            "unsubscribe_url",
        }
    ),
    # A low rating, to the shop's support address.
    "survey_alert": frozenset(
        {
            "shop_name",
            "rating",
            "comment",
            "ticket_source",
            "ticket_id",
            "ticket_subject",
            "agent",
            "customer_name",
            "customer_email",
            "customer_phone",
            "order_name",
            "unsubscribe_url",
        }
    ),
}

# Shipping stages tell the same facts as "shipped"; delays add what was
# promised, what is expected now, and why (`cause`: not_shipped,
# estimate_revised, estimate_passed, stalled, exception; `causes`: every
# delay this one message tells of, `cause` first), and whether this is the
# one follow-up sent when the delay grew (`escalated`).
for _stage in ("out_for_delivery", "ready_for_pickup", "delivered"):
    KINDS[_stage] = KINDS["shipping"]
KINDS["delay"] = KINDS["shipping"] | {
    "cause", "causes", "promised_date", "expected_date", "escalated",
}  # fmt: skip
KINDS["delay_followup"] = KINDS["shipping"] | {"promised_date"}

_SAMPLES: dict[str, dict[str, Any]] = {
    "shipping": {
        "shop_name": "Northwind Outfitters",
        "customer_first_name": "Ana",
        "order_name": "#1042",
        "carrier": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
        "estimated_delivery": datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
        "total": Decimal("84.50"),
        "currency": "USD",
        "unsubscribe_url": None,
    },
    "survey": {
        "shop_name": "Northwind Outfitters",
        "customer_first_name": "Ana",
        "order_name": "#1042",
        "total": Decimal("84.50"),
        "currency": "USD",
        "survey_url": "https://careloop.example/s/1.q2Xb8aT0mKc1vJH5f3yLwA",
        "ticket_subject": "Where is my order?",
        "reminder": False,
        "unsubscribe_url": None,
    },
    "survey_alert": {
        "shop_name": "Northwind Outfitters",
        "rating": 1,
        "comment": "Nobody answered for a week.",
        "ticket_source": "gorgias",
        "ticket_id": "42001",
        "ticket_subject": "Where is my order?",
        "agent": "sam@northwind.example",
        "customer_name": "Ana Garcia",
        "customer_email": "ana@example.com",
        "customer_phone": "+34612345678",
        "order_name": "#1042",
        "unsubscribe_url": None,
    },
    "birthday": {
        "shop_name": "Northwind Outfitters",
        "customer_first_name": "Ana",
        "discount_code": "HBD-K3QZ7M2XPA",
        "discount_percent": 10,
        "discount_ends_at": datetime(2027, 1, 3, 9, 0, tzinfo=UTC),
        "unsubscribe_url": "https://careloop.example.com/u/sample",
    },
    "recovery": {
        "shop_name": "Northwind Outfitters",
        "customer_first_name": "Ana",
        "discount_code": "SORRY-Q7M2XPAK3Z",
        "discount_percent": 15,
        "discount_ends_at": datetime(2027, 1, 3, 9, 0, tzinfo=UTC),
        "unsubscribe_url": "https://careloop.example.com/u/sample",
    },
}

for _stage in ("out_for_delivery", "ready_for_pickup", "delivered"):
    _SAMPLES[_stage] = _SAMPLES["shipping"]
_SAMPLES["delay"] = _SAMPLES["shipping"] | {
    "cause": "stalled",
    "causes": ["stalled"],
    "promised_date": datetime(2026, 11, 25, 23, 0, tzinfo=UTC),
    "expected_date": datetime(2026, 11, 28, 18, 0, tzinfo=UTC),
    "escalated": False,
}
_SAMPLES["delay_followup"] = _SAMPLES["shipping"] | {
    "promised_date": datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
}

_CHANNEL_FILES: dict[str, dict[str, str]] = {
    "email": {"subject": "subject.txt", "html": "email.html", "text": "email.txt"},
    "sms": {"text": "sms.txt"},
}

Field = Literal["subject", "html", "text"]


@dataclass(frozen=True)
class Rendered:
    subject: str | None  # email only: one line
    html: str | None  # email only: CSS inlined
    text: str  # the email's text part, or the SMS body


@dataclass(frozen=True)
class TemplateSource:
    """A shop's own template for one kind, channel and locale."""

    subject: str | None
    html: str | None
    text: str


@dataclass(frozen=True)
class TemplateProblem:
    field: Field
    line: int | None
    message: str


class OverrideRefused(TemplateError):
    """A shop's template cannot be rendered; `problems` says why."""

    def __init__(self, problems: list[TemplateProblem]):
        self.problems = problems
        super().__init__("; ".join(_describe(p) for p in problems))


def sample_context(kind: str) -> dict[str, Any]:
    """Realistic values for previews and for checking a shop's template."""
    _names(kind)
    return dict(_SAMPLES[kind])


def render(
    kind: str,
    channel: str,
    locale: str,
    context: Mapping[str, Any],
    *,
    shop_locale: str = DEFAULT_LOCALE,
    override: TemplateSource | None = None,
) -> Rendered:
    """Render a notification: ours from disk, or the shop's `override`.

    `context` holds the kind's names (see `KINDS`); a name left out is None,
    a name not in the list is a ValueError. A bad override raises
    `OverrideRefused` (a `jinja2.TemplateError`).
    """
    values = _context_values(kind, context)
    _check_channel(channel)
    if override is None:
        template_locale = _template_locale(kind, channel, locale, shop_locale)
        same_language = _language(_normalize(locale)) == _language(template_locale)
        babel_locale = _babel_locale(*([locale] if same_language else []), template_locale)
        with _formatting(babel_locale):
            parts = {
                field: _FILE_ENV.get_template(f"{kind}/{template_locale}/{name}").render(values)
                for field, name in _CHANNEL_FILES[channel].items()
            }
    else:
        templates = _compile_override(kind, channel, override)
        babel_locale = _babel_locale(locale, shop_locale, DEFAULT_LOCALE)
        with _formatting(babel_locale):
            parts = {field: _render_bounded(field, t, values) for field, t in templates.items()}
        _check_sms_length(channel, parts)
    if channel == "sms":
        return Rendered(subject=None, html=None, text=parts["text"].strip())
    html, _ = _safe_links(inline_css(parts["html"]))
    if override is not None and len(html.encode()) > MAX_OUTPUT_BYTES:
        raise OverrideRefused([_too_large("html")])
    if override is not None and (problems := _markup_problems(html)):
        raise OverrideRefused(problems)  # a branch the check's renders did not reach
    return Rendered(subject=_one_line(parts["subject"]), html=html, text=parts["text"].strip())


def validate_override(kind: str, channel: str, source: TemplateSource) -> list[TemplateProblem]:
    """What is wrong with a shop's template, with the line where there is one.

    Checks syntax, constructs and filters, names outside the kind's context,
    a subject on more than one line, then renders it with sample data (once
    as `sample_context`, once with every value None) for what only shows
    when it runs: the sandbox refusing something, an SMS over 1600
    characters, output over 100 KB, a link that is not http(s) or mailto.
    """
    _names(kind)
    _check_channel(channel)
    templates, problems = _compile_fields(kind, channel, source)
    found: dict[tuple[str, int | None], TemplateProblem] = {}
    sample = sample_context(kind)
    for values in (sample, {name: _missing(kind, name) for name in sample}):
        parts, refusals = {}, []
        with _formatting(_babel_locale(DEFAULT_LOCALE)):
            for field, template in templates.items():
                try:
                    parts[field] = _render_bounded(field, template, values)
                except OverrideRefused as exc:
                    refusals += exc.problems
        try:
            _check_sms_length(channel, parts)
        except OverrideRefused as exc:
            refusals += exc.problems
        if "html" in parts:
            inlined = inline_css(parts["html"])
            refusals += _markup_problems(inlined)
            if values is sample:  # None in an href is no scheme
                refusals += [_bad_link(url) for url in _safe_links(inlined)[1]]
        for problem in refusals:  # the same place failing in both renders is one problem
            found.setdefault((problem.field, problem.line), problem)
    return problems + list(found.values())


# -- links -------------------------------------------------------------------

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
# The HTML attributes whose value a mail client may follow or load (WHATWG
# HTML's URL-valued attributes, SVG's xlink:href); srcset holds several.
_URL_ATTRIBUTES = (
    "href|src|srcset|action|formaction|background|poster|cite|longdesc|data|codebase"
    "|archive|classid|usemap|profile|manifest|icon|ping|lowsrc|dynsrc|xlink:href"
)
# `inline_css` re-serializes the HTML as a browser parsed it (html5ever): every
# attribute is written ` name="value"`, with `"` escaped in the value, so no
# spelling of an attribute can slip past this pattern.
_URL_ATTRIBUTE = re.compile(rf'\s({_URL_ATTRIBUTES})="([^"]*)"', re.IGNORECASE)


def _safe_links(html: str) -> tuple[str, list[str]]:
    """`html` (serialized by `inline_css`) without the URL attributes whose
    scheme is not http, https or mailto, and the URLs it dropped. A link
    such as `javascript:` runs script where a message is shown in a browser;
    relative links mean nothing in an email."""
    dropped: list[str] = []

    def check(match: re.Match) -> str:
        value = htmlmodule.unescape(match[2])
        urls = (
            [c.split()[0] for c in value.split(",") if c.split()]
            if match[1].lower() == "srcset"
            else [value]
        )
        bad = [url for url in urls if not _allowed_link(url)]
        dropped.extend(bad)
        return "" if bad else match[0]

    def check_style(match: re.Match) -> str:
        bad = _css_problems(htmlmodule.unescape(match[2]))
        dropped.extend(bad)
        return "" if bad else match[0]

    html = _URL_ATTRIBUTE.sub(check, html)
    html = _STYLE_ATTRIBUTE.sub(check_style, html)
    return _STYLE_ELEMENT.sub(check_style, html), dropped


# CSS reaches URLs too: `url(...)` in a style attribute or a <style> element,
# `@import`, and old engines' `expression(...)`; CSS escapes (`\61` is "a")
# are read first, as a browser would.
_STYLE_ATTRIBUTE = re.compile(r'\s(style)="([^"]*)"', re.IGNORECASE)
_STYLE_ELEMENT = re.compile(r"<(style)\b[^>]*>(.*?)</style>", re.IGNORECASE | re.DOTALL)
_CSS_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})\s?|(.))", re.DOTALL)


def _css_problems(css: str) -> list[str]:
    """The URLs (or constructs) in CSS that a message may not carry."""
    css = _CSS_ESCAPE.sub(
        lambda m: chr(min(int(m[1], 16), 0x10FFFF) or 0xFFFD) if m[1] else m[2], css
    )
    bad = [url for _, url in _CSS_URL.findall(css) if not _allowed_link(url)]
    compact = re.sub(r"\s+|/\*.*?\*/", "", css.lower(), flags=re.DOTALL)
    # Also what `image-set("…")` and friends take as plain strings.
    bad += [word for word in _CSS_REFUSED if word in compact]
    return bad


_CSS_REFUSED = ("@import", "expression(", "javascript:", "vbscript:", "data:", "-moz-binding",
                "behavior:")  # fmt: skip
# Elements a message has no use for and that run, load or submit something
# where the message is shown in a browser or a webmail (a meta refresh, a
# frame, a form, SVG's animations that set a link).
_FORBIDDEN_ELEMENTS = frozenset({
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "meta", "base",
    "link", "form", "svg", "math", "template", "noscript", "portal",
})  # fmt: skip


class _MarkupCheck(HTMLParser):
    """What in a shop's rendered HTML is not allowed, by element and
    attribute as a browser parses them (not by pattern: an attribute's
    order or a `>` inside a value cannot hide anything)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _FORBIDDEN_ELEMENTS:
            self.problems.append(f"<{tag}> is not allowed in a message")
        for name, value in attrs:
            if name.startswith("on") or name == "srcdoc":
                self.problems.append(f"the {name} attribute is not allowed in a message")
            elif name == "style" and _css_problems(value or ""):
                self.problems.append("a style may only load http or https addresses")

    handle_startendtag = handle_starttag


def _markup_problems(html: str) -> list[TemplateProblem]:
    check = _MarkupCheck()
    check.feed(html)
    check.close()
    return [TemplateProblem("html", None, p) for p in dict.fromkeys(check.problems)]


def _allowed_link(url: str) -> bool:
    # Browsers drop leading and trailing C0 controls and spaces, and every tab
    # and line break inside a URL, before they read its scheme (WHATWG URL).
    cleaned = re.sub(r"[\t\n\r]", "", url).strip("".join(map(chr, range(33))))
    scheme, colon, _ = cleaned.partition(":")
    return bool(colon) and scheme.lower() in LINK_SCHEMES


def _bad_link(url: str) -> TemplateProblem:
    shown = url if len(url) <= 60 else url[:57] + "..."
    message = f"links may only be http, https or mailto, not {shown!r}"
    return TemplateProblem("html", None, message)


# -- formatting ------------------------------------------------------------

_LOCALE: contextvars.ContextVar[Locale | None] = contextvars.ContextVar(
    "notification_locale", default=None
)


@contextmanager
def _formatting(locale: Locale) -> Iterator[None]:
    """The locale the `date` and `money` filters use while rendering."""
    token = _LOCALE.set(locale)
    try:
        yield
    finally:
        _LOCALE.reset(token)


def _current_locale() -> Locale:
    return _LOCALE.get() or Locale.parse(DEFAULT_LOCALE)


# pass_context only so that Jinja never evaluates a filter on constants while
# compiling, outside the render and its locale.
@pass_context
def _date_filter(_context: Any, value: Any) -> str:
    """`{{ estimated_delivery|date }}`: the locale's medium date, "" for None."""
    if value is None:
        return ""
    if not isinstance(value, date):
        raise TypeError(f"the date filter needs a date, not {type(value).__name__}")
    return format_date(value, format="medium", locale=_current_locale())


@pass_context
def _money_filter(_context: Any, value: Any, currency: Any) -> str:
    """`{{ total|money(currency) }}`: the amount in the locale's format, "" for None."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float):
        raise TypeError(f"the money filter needs an amount, not {type(value).__name__}")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise TypeError("the money filter needs a three-letter currency code")
    return format_currency(value, currency.upper(), locale=_current_locale())


_STEPS: contextvars.ContextVar[list[int]] = contextvars.ContextVar("render_steps")


@pass_context  # never called while compiling (constant folding)
def _steps(_context: Any, items: Any, weight: int) -> Iterator[Any]:
    """Yield `items`, charging `weight` steps for each; past MAX_RENDER_STEPS
    the render is refused. A missing value (None) yields nothing, as every
    value of a message may be missing."""
    budget = _STEPS.get()
    for item in items if items is not None else ():  # a missing list: nothing to loop over
        budget[0] -= weight
        if budget[0] < 0:
            message = f"the template takes more than {MAX_RENDER_STEPS:,} steps to render (a loop)"
            raise OverrideRefused([TemplateProblem("text", None, message)])
        yield item


def _is_https_url(value: Any) -> bool:
    """`{% if tracking_url is https_url %}`: only these become links."""
    if not isinstance(value, str) or any(c.isspace() or ord(c) < 32 for c in value):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme.lower() == "https" and bool(parts.hostname)
    except ValueError:
        return False


FILTERS = {"date": _date_filter, "money": _money_filter}


def _restrict(env: Environment) -> Environment:
    """Our filters only, no globals (range, cycler, lipsum, ...), one extra test."""
    env.filters.clear()
    env.filters.update(FILTERS)
    env.globals.clear()
    env.tests["https_url"] = _is_https_url
    return env


_FILE_ENV = _restrict(
    Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=lambda name: name is not None and name.endswith(".html"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
)


def _shown(value: Any) -> Any:
    """What `{{ value }}` writes in a shop's template: a missing value writes
    nothing (never "None"), a list its items separated by commas (never
    Python's brackets and quotes)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(_shown(v)) for v in value)
    return value


def _sandbox(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown,
    )
    _restrict(env)
    env.filters["_steps"] = _steps  # inserted by _count_loop_steps only
    # Never fold arithmetic at compile time (it is refused anyway, see _ALLOWED_NODES).
    env.intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    env.intercepted_unops = frozenset({"+", "-"})
    return env


_SANDBOXES = {"subject": _sandbox(False), "html": _sandbox(True), "text": _sandbox(False)}


# -- locales ---------------------------------------------------------------

_LOCALE_SHAPE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def _normalize(locale: Any) -> str | None:
    """ "es_mx" -> "es-MX", "zh-hant-tw" -> "zh-Hant-TW"; None if not a locale."""
    if not isinstance(locale, str) or not _LOCALE_SHAPE.fullmatch(locale):
        return None
    language, *rest = re.split(r"[-_]", locale)
    subtags = [language.lower()]
    for tag in rest:
        if len(tag) == 2 and tag.isalpha():
            subtags.append(tag.upper())
        elif len(tag) == 4 and tag.isalpha():
            subtags.append(tag.title())
        else:
            subtags.append(tag.lower())
    return "-".join(subtags)


def _language(locale: str | None) -> str | None:
    return locale.split("-")[0] if locale else None


def locale_chain(locale: str) -> list[str]:
    """The locales that serve `locale`, most specific first: "es_MX" and
    "es-mx" give es-MX, es. The one fallback rule for our templates and the
    shops' own; [] when `locale` is not a locale."""
    normalized = _normalize(locale)
    if not normalized:
        return []
    subtags = normalized.split("-")
    return ["-".join(subtags[:end]) for end in range(len(subtags), 0, -1)]


def _candidates(*locales: str) -> Iterator[str]:
    """Each locale, then its shorter forms: es-MX, es, <shop's>, ..., en."""
    for locale in (*locales, DEFAULT_LOCALE):
        yield from locale_chain(locale)


def _template_locale(kind: str, channel: str, locale: str, shop_locale: str) -> str:
    for candidate in _candidates(locale, shop_locale):
        folder = TEMPLATE_DIR / kind / candidate
        if all((folder / name).is_file() for name in _CHANNEL_FILES[channel].values()):
            return candidate
    raise LookupError(f"no {channel} template for {kind!r} in {locale!r}, {shop_locale!r} or en")


def _babel_locale(*locales: str) -> Locale:
    for locale in locales:
        normalized = _normalize(locale)
        if normalized:
            try:
                return Locale.parse(normalized, sep="-")
            except (ValueError, UnknownLocaleError):
                continue
    return Locale.parse(DEFAULT_LOCALE)


# -- context ---------------------------------------------------------------


def _names(kind: str) -> frozenset[str]:
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind]


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")


def _context_values(kind: str, context: Mapping[str, Any]) -> dict[str, Any]:
    names = _names(kind)
    unknown = sorted(set(context) - names)
    if unknown:
        raise ValueError(f"not in the {kind!r} context: {', '.join(unknown)}")
    return {name: _missing(kind, name) if context.get(name) is None else context[name]
            for name in names}  # fmt: skip


def _missing(kind: str, name: str) -> list | None:
    """What a name the context leaves out holds: an empty list for a list
    (the sample says which), so that `in` and loops work on it; else None."""
    return [] if isinstance(_SAMPLES[kind].get(name), list) else None


def _one_line(subject: str) -> str:
    """A header value: no line breaks, whatever the values held."""
    return " ".join(subject.split())


# -- shop templates ----------------------------------------------------------

# Everything a shop's template may contain: output, conditions, one level of
# loop, reading values and our filters. Each of these produces at most what
# its source and the context hold, so the output bound is also a memory bound.
_ALLOWED_NODES = frozenset(
    {
        nodes.Template,
        nodes.Scope,
        nodes.Output,
        nodes.TemplateData,
        nodes.Const,
        nodes.Name,
        nodes.If,
        nodes.For,
        nodes.CondExpr,
        nodes.And,
        nodes.Or,
        nodes.Not,
        nodes.Compare,
        nodes.Operand,
        nodes.Test,
        nodes.Filter,
        nodes.Keyword,
        nodes.Getattr,
        nodes.Getitem,
        nodes.Slice,
        nodes.Concat,
        nodes.List,
        nodes.Tuple,
        nodes.Dict,
        nodes.Pair,
    }
)
_REFUSED_NAMES = {
    nodes.Include: "{% include %}",
    nodes.Extends: "{% extends %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}",
    nodes.With: "{% with %}",
    nodes.FilterBlock: "{% filter %}",
    nodes.Block: "{% block %}",
    nodes.ScopedEvalContextModifier: "{% autoescape %}",
    nodes.EvalContextModifier: "{% autoescape %}",
    nodes.Call: "calling functions or methods",
    nodes.BinExpr: "arithmetic",
    nodes.UnaryExpr: "arithmetic",
}


# Names Jinja gives every template besides its context (`self` is the
# template object itself): never a message's value, so never a shop's.
_JINJA_NAMES = frozenset({"self", "caller", "varargs", "kwargs"})


def _override_fields(
    channel: str, source: TemplateSource, problems: list[TemplateProblem]
) -> list[tuple[Field, str]]:
    """The fields the channel uses; what is missing or extra is a problem."""
    fields: list[tuple[Field, str]] = []
    wanted: tuple[Field, ...] = ("subject", "html", "text") if channel == "email" else ("text",)
    for field in ("subject", "html", "text"):
        text = getattr(source, field)
        if field not in wanted:
            if text is not None:
                problems.append(TemplateProblem(field, None, f"an SMS has no {field} part"))
        elif not isinstance(text, str) or not text.strip():
            problems.append(TemplateProblem(field, None, f"the {field} part is empty"))
        else:
            fields.append((field, text))
    return fields


def _compile_field(kind: str, field: Field, source: str) -> tuple[Template | None, list]:
    env = _SANDBOXES[field]
    if len(source) > MAX_SOURCE_CHARS:
        message = f"the template is longer than {MAX_SOURCE_CHARS:,} characters"
        return None, [TemplateProblem(field, None, message)]
    problems = _text_problems(field, source)
    if problems:
        return None, problems
    try:
        # The parser recurses for each level of nesting: measure it first.
        problems = _shape_problems(field, env, source)
        if problems:
            return None, problems
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return None, [TemplateProblem(field, exc.lineno, f"syntax error: {exc.message}")]
    problems = _depth_problems(field, tree)
    if problems:
        return None, problems
    # Nothing is compiled before the constructs are checked: compiling folds
    # constants, and `{{ 'x' * 10**9 }}` would be folded into memory.
    problems = list(_refused_constructs(field, tree, in_loop=False))
    if problems:
        return None, problems
    try:
        undeclared = meta.find_undeclared_variables(tree)
    except TemplateSyntaxError as exc:  # unknown filters and tests are found here
        return None, [_compile_problem(field, exc)]
    allowed = _names(kind)
    for name in sorted(undeclared - allowed):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), None)
        known = ", ".join(sorted(allowed))
        problems.append(TemplateProblem(field, line, f"unknown variable {name!r} (known: {known})"))
    # One trailing line break is what an editor adds; any other starts line 2.
    if field == "subject" and re.search(r"[\r\n]", re.sub(r"\r?\n\Z|\r\Z", "", source)):
        problems.append(TemplateProblem(field, 2, "the subject must be one line"))
    if problems:
        return None, problems
    _count_loop_steps(tree)
    try:
        return env.from_string(tree), []
    except TemplateSyntaxError as exc:
        return None, [_compile_problem(field, exc)]


def _text_problems(field: Field, source: str) -> list[TemplateProblem]:
    """Characters no template needs and our storage refuses: NUL (PostgreSQL
    text cannot hold it) and lone surrogates (not encodable as UTF-8)."""
    found = _UNSTORABLE.search(source)
    if found is None:
        return []
    line = source.count("\n", 0, found.start()) + 1
    what = "a NUL character" if found[0] == "\0" else "a character that is not Unicode text"
    return [TemplateProblem(field, line, f"the template contains {what}")]


_UNSTORABLE = re.compile("[\0\ud800-\udfff]")


_BLOCK_TAGS = frozenset({"if", "for", "macro", "call", "filter", "with", "block", "autoescape"})
_OPENING = frozenset({"(", "[", "{"})
_CLOSING = frozenset({")", "]", "}"})


def _shape_problems(field: Field, env: Environment, source: str) -> list[TemplateProblem]:
    """What the parser would take long over or choke on, found from the
    tokens (the lexer does not recurse): more than MAX_TAGS tags or
    MAX_TOKENS tokens in them, tags of more than MAX_TAG_TOKENS tokens,
    brackets or blocks nested more than MAX_NESTING deep, numbers of more
    than MAX_NUMBER_CHARS characters."""
    blocks, brackets, tags, tokens = 0, 0, 0, 0
    tag: list[tuple[str, str]] = []
    for line, kind, value in env.lexer.tokeniter(source, None):
        problem = None
        if kind in ("block_begin", "variable_begin"):
            tag, brackets, tags = [], 0, tags + 1
            if tags > MAX_TAGS:
                problem = f"the template has more than {MAX_TAGS:,} tags ({{{{ }}}} and {{% %}})"
        elif kind in ("block_end", "variable_end"):
            blocks += _block_change(tag)
            if blocks > MAX_NESTING:
                problem = f"blocks are nested more than {MAX_NESTING} deep"
        elif kind not in ("whitespace", "comment", "comment_begin", "comment_end", "data"):
            tag.append((kind, value))
            brackets += (value in _OPENING) - (value in _CLOSING) if kind == "operator" else 0
            tokens += 1
            if tokens > MAX_TOKENS:
                problem = f"the template's tags have more than {MAX_TOKENS:,} parts in all"
            elif len(tag) > MAX_TAG_TOKENS:
                problem = f"an expression or tag has more than {MAX_TAG_TOKENS} parts"
            elif kind in ("integer", "float") and len(value) > MAX_NUMBER_CHARS:
                problem = f"a number is longer than {MAX_NUMBER_CHARS} characters"
            elif brackets > MAX_NESTING:
                problem = f"brackets are nested more than {MAX_NESTING} deep"
        if problem:
            return [TemplateProblem(field, line, problem)]
    return []


def _block_change(tag: list[tuple[str, str]]) -> int:
    """+1 for a tag that opens a block (`{% if %}`, `{% set x %}`), -1 for one
    that ends it, else 0."""
    first = next((value for kind, value in tag if kind == "name"), "")
    if first in _BLOCK_TAGS or (first == "set" and ("operator", "=") not in tag):
        return 1
    return -1 if first.startswith("end") else 0


def _depth_problems(field: Field, tree: nodes.Template) -> list[TemplateProblem]:
    """A tree deeper than MAX_TREE_DEPTH (`a.b.c…`, `a or b or c…` nest without
    brackets), measured without recursion, before anything walks it by recursion."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            message = f"an expression is nested more than {MAX_TREE_DEPTH} deep"
            return [TemplateProblem(field, node.lineno, message)]
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return []


def _count_loop_steps(tree: nodes.Template) -> None:
    """Make every loop charge its body's size to the render's step budget for
    each item it takes (see `_steps`). Loops do not nest (refused), so this
    counts nearly all the work a render does beyond one pass over its source."""
    for loop in tree.find_all(nodes.For):
        weight = 1 + sum(_size(part) for part in (*loop.body, *loop.else_, loop.test) if part)
        loop.iter = nodes.Filter(loop.iter, "_steps", [nodes.Const(weight)], [], None, None)


def _size(node: nodes.Node) -> int:
    """Nodes, plus the characters of constants: comparing or joining long
    strings costs in proportion to their length."""
    size = 0
    for each in (node, *node.find_all(nodes.Node)):
        size += 1
        if isinstance(each, nodes.Const) and isinstance(each.value, str):
            size += len(each.value) // 16
        elif isinstance(each, nodes.TemplateData):
            size += len(each.data) // 16
    return size


def _compile_problem(field: Field, exc: TemplateSyntaxError) -> TemplateProblem:
    message = exc.message or str(exc)
    if "filter" in message:
        message += f" (filters: {', '.join(FILTERS)})"
    return TemplateProblem(field, exc.lineno, message)


def _refused_constructs(field: Field, node: nodes.Node, in_loop: bool) -> Iterator:
    if type(node) not in _ALLOWED_NODES:
        what = next(
            (name for kind, name in _REFUSED_NAMES.items() if isinstance(node, kind)),
            type(node).__name__,
        )
        yield TemplateProblem(
            field, node.lineno, f"{what} is not allowed in notification templates"
        )
        return
    if isinstance(node, nodes.For):
        if in_loop:
            yield TemplateProblem(field, node.lineno, "a loop inside another loop is not allowed")
            return
        if node.recursive:
            yield TemplateProblem(field, node.lineno, "recursive loops are not allowed")
            return
    if isinstance(node, nodes.Name) and node.name in _JINJA_NAMES:
        message = f"{node.name!r} is not one of the message's values"
        yield TemplateProblem(field, node.lineno, message)
        return
    if isinstance(node, nodes.Filter) and node.name not in FILTERS:  # _steps is ours alone
        message = f"no filter named {node.name!r} (filters: {', '.join(FILTERS)})"
        yield TemplateProblem(field, node.lineno, message)
        return
    for child in node.iter_child_nodes():
        yield from _refused_constructs(field, child, in_loop or isinstance(node, nodes.For))


def _compile_fields(
    kind: str, channel: str, source: TemplateSource
) -> tuple[dict[str, Template], list[TemplateProblem]]:
    """The channel's fields compiled, and what is wrong with them."""
    problems: list[TemplateProblem] = []
    templates = {}
    for field, text in _override_fields(channel, source, problems):
        try:
            template, field_problems = _compile_field(kind, field, text)
        except RecursionError:  # the bounds above are meant to make this unreachable
            template, field_problems = None, [TemplateProblem(field, None, "nested too deeply")]
        problems += field_problems
        if template is not None:
            templates[field] = template
    return templates, problems


@functools.lru_cache(maxsize=256)
def _compile_override(kind: str, channel: str, source: TemplateSource) -> dict[str, Template]:
    """A shop's template, compiled once rather than for every message: the
    checks and compiling cost about 5 ms, rendering it 0.3 ms. Compiled
    templates hold no state between renders; a refusal is not cached."""
    templates, problems = _compile_fields(kind, channel, source)
    if problems:
        raise OverrideRefused(problems)
    return templates


def _render_bounded(field: Field, template: Template, values: dict[str, Any]) -> str:
    """Render a shop's template, stopping as soon as it passes the size bound
    or its step budget."""
    chunks, size = [], 0
    budget = _STEPS.set([MAX_RENDER_STEPS])
    try:
        for chunk in template.generate(values):
            size += len(chunk.encode())
            if size > MAX_OUTPUT_BYTES:
                raise OverrideRefused([_too_large(field)])
            chunks.append(chunk)
    except OverrideRefused as exc:  # the step budget: say where the loop is
        line = _template_line(exc)
        problems = [replace(p, field=field, line=p.line or line) for p in exc.problems]
        raise OverrideRefused(problems) from None
    except SecurityError as exc:
        problem = TemplateProblem(field, _template_line(exc), f"not allowed: {exc}")
        raise OverrideRefused([problem]) from exc
    except Exception as exc:  # anything an untrusted template can cause
        problem = TemplateProblem(field, _template_line(exc), _plain_words(exc))
        raise OverrideRefused([problem]) from exc
    finally:
        _STEPS.reset(budget)
    return "".join(chunks)


def _plain_words(exc: Exception) -> str:
    """What went wrong while rendering, for a merchant rather than a Python
    programmer. Our filters' own errors already say it plainly."""
    if isinstance(exc, UndefinedError):
        return ("uses a value that is not there (a misspelt name, or a part of a "
                "value that may be missing: check it with {% if ... %} first)")  # fmt: skip
    if isinstance(exc, TypeError) and str(exc).startswith("the "):
        return str(exc)  # the date and money filters
    return ("cannot be shown with some values (one may be missing, or text where a "
            "number is expected): check it with {% if ... %} first")  # fmt: skip


def _template_line(exc: BaseException) -> int | None:
    """The template line an error happened on (Jinja rewrites tracebacks so
    that template frames carry template lines)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _check_sms_length(channel: str, parts: dict[str, str]) -> None:
    if channel == "sms" and "text" in parts and len(parts["text"].strip()) > MAX_SMS_CHARS:
        length = len(parts["text"].strip())
        message = f"the SMS is {length} characters long; the limit is {MAX_SMS_CHARS}"
        raise OverrideRefused([TemplateProblem("text", None, message)])


def _too_large(field: Field) -> TemplateProblem:
    return TemplateProblem(field, None, f"the {field} is larger than {MAX_OUTPUT_BYTES:,} bytes")


def _describe(problem: TemplateProblem) -> str:
    where = f"{problem.field}, line {problem.line}" if problem.line else problem.field
    return f"{where}: {problem.message}"


def our_source(kind: str, channel: str, locale: str) -> TemplateSource:
    """Our own template's text for a kind, channel and locale (falling back
    as a message would): where a shop's editor starts from. Our HTML extends
    a layout, which a shop's template may not; it starts from the body and
    footer blocks of ours, in a plain page."""
    _names(kind)
    _check_channel(channel)
    folder = TEMPLATE_DIR / kind / _template_locale(kind, channel, locale, DEFAULT_LOCALE)
    files = _CHANNEL_FILES[channel]
    text = {field: (folder / name).read_text() for field, name in files.items()}
    html = text.get("html")
    if html is not None:
        blocks = dict(_BLOCK.findall(html))
        body = "\n".join(blocks[name].strip() for name in ("content", "footer") if name in blocks)
        html = f"<!doctype html>\n<html>\n<body>\n{body}\n</body>\n</html>\n"
    return TemplateSource(text.get("subject"), html, text["text"])


_BLOCK = re.compile(r"{%-?\s*block\s+(\w+)\s*-?%}(.*?){%-?\s*endblock\s*-?%}", re.DOTALL)
