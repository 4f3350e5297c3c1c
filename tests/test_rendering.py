"""Rendering customer notifications: our templates per kind, channel and
locale, locale fallback, Babel formatting, escaping, inlined CSS, and shops'
own templates in the sandbox with their validation."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from jinja2 import Environment, TemplateError, meta

from notifications.rendering import (
    FILTERS,
    KINDS,
    TEMPLATE_DIR,
    OverrideRefused,
    Rendered,
    TemplateProblem,
    TemplateSource,
    render,
    sample_context,
    validate_override,
)

TRACKING_URL = "https://www.ups.com/track?tracknum=1Z999AA10123456784"
LOCALES = ["en", "es", "ru"]
# GSM 03.38 basic characters: a message of at most 160 of these is one SMS segment.
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def spaced(text: str) -> str:
    """Babel separates with no-break spaces (U+00A0, U+202F); HTML may say &nbsp;."""
    return re.sub("&nbsp;|\xa0|\u202f", " ", text)


def shipment(**changes) -> dict:
    context = {
        "shop_name": "Northwind Outfitters",
        "customer_first_name": "Ana",
        "order_name": "#1042",
        "carrier": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "tracking_url": TRACKING_URL,
        "estimated_delivery": datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
        "total": Decimal("1284.50"),
        "currency": "EUR",
        "unsubscribe_url": None,
    }
    return {**context, **changes}


def email(locale: str = "en", **changes) -> Rendered:
    return render("shipping", "email", locale, shipment(**changes))


def sms(locale: str = "en", **changes) -> str:
    return render("shipping", "sms", locale, shipment(**changes)).text


def override(source: TemplateSource, channel: str = "email", locale: str = "en", **changes):
    return render("shipping", channel, locale, shipment(**changes), override=source)


def email_source(html: str = "<p>{{ order_name }}</p>", **fields) -> TemplateSource:
    return TemplateSource(
        subject=fields.get("subject", "{{ order_name }} shipped"),
        html=html,
        text=fields.get("text", "{{ order_name }} shipped"),
    )


# -- our templates -------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "subject", "words"),
    [
        (
            "en",
            "Your order #1042 has shipped",
            ["Hi Ana,", "has shipped", "Carrier", "Tracking number", "Estimated delivery"],
        ),
        (
            "es",
            "Tu pedido #1042 ya está en camino",
            ["¡Hola, Ana!", "ya hemos enviado", "Transportista", "Número de seguimiento"],
        ),
        (
            "ru",
            "Ваш заказ #1042 отправлен",
            ["Здравствуйте, Ana!", "мы отправили", "Служба доставки", "Трек-номер"],
        ),
    ],
)
def test_each_locale_renders_an_email_in_its_language(locale, subject, words):
    rendered = email(locale)

    assert rendered.subject == subject
    assert f'<html lang="{locale}"' in rendered.html
    for part in (rendered.html, rendered.text):
        assert "Northwind Outfitters" in part
        assert "UPS" in part
        assert "1Z999AA10123456784" in part
        for word in words:
            assert word in part


@pytest.mark.parametrize(
    ("locale", "words"),
    [("en", "has shipped with UPS"), ("es", "ya va en camino con UPS"), ("ru", "отправлен (UPS)")],
)
def test_each_locale_renders_an_sms_with_the_tracking_url(locale, words):
    body = render("shipping", "sms", locale, shipment())

    assert body.subject is None
    assert body.html is None
    assert words in body.text
    assert body.text.startswith("Northwind Outfitters: ")
    assert body.text.endswith(TRACKING_URL)


@pytest.mark.parametrize("locale", ["en", "es"])
def test_sms_with_sample_data_fits_one_gsm_segment(locale):
    body = render("shipping", "sms", locale, sample_context("shipping")).text

    assert len(body) <= 160
    assert set(body) <= GSM_BASIC


def test_regional_locale_falls_back_to_its_language():
    assert email("es-MX").subject == "Tu pedido #1042 ya está en camino"
    assert email("es_mx").subject == "Tu pedido #1042 ya está en camino"
    assert "ya va en camino" in sms("es-AR")


def test_unknown_locale_falls_back_to_the_shop_locale():
    rendered = render("shipping", "email", "de-DE", shipment(), shop_locale="ru")

    assert rendered.subject == "Ваш заказ #1042 отправлен"


@pytest.mark.parametrize("locale", ["de", "fr-CA", "", "../../etc", "zz"])
def test_unknown_locale_and_unknown_shop_locale_fall_back_to_english(locale):
    rendered = render("shipping", "email", locale, shipment(), shop_locale="pt-BR")

    assert rendered.subject == "Your order #1042 has shipped"


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("en", "Nov 27, 2026"), ("es", "27 nov 2026"), ("ru", "27 нояб. 2026 г.")],  # noqa: RUF001
)
def test_estimated_delivery_is_a_date_in_the_locales_format(locale, expected):
    rendered = email(locale)

    assert expected in spaced(rendered.text)
    assert expected in spaced(rendered.html)


def test_dates_follow_the_template_language_when_the_customers_is_missing():
    # A French customer of an English shop reads an English date in the English email.
    assert "Nov 27, 2026" in email("fr").text


@pytest.mark.parametrize(
    ("locale", "expected"), [("es", "1.284,50 €"), ("en", "€1,284.50"), ("ru", "1 284,50 €")]
)
def test_money_is_formatted_for_the_locale(locale, expected):
    assert expected in spaced(email(locale, currency="EUR").text)


def test_regional_locale_formats_with_its_own_conventions():
    # es-MX reads Spanish templates but Mexican number formats.
    text = email("es-MX", total=Decimal("1284.5"), currency="MXN").text

    assert "$1,284.50" in text
    assert "Total del pedido" in text


def test_malicious_first_name_is_escaped_in_html_and_plain_in_text():
    rendered = email(customer_first_name="<script>alert(1)</script>")

    assert "<script" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "Hi <script>alert(1)</script>," in rendered.text


@pytest.mark.parametrize("locale", LOCALES)
def test_unknown_first_name_gets_a_neutral_greeting(locale):
    greeting = {"en": "Hello,", "es": "¡Hola!", "ru": "Здравствуйте!"}[locale]

    rendered = email(locale, customer_first_name=None)

    assert rendered.text.startswith(greeting + "\n")
    assert f">{greeting}</p>" in rendered.html
    assert "None" not in rendered.text + rendered.html


def test_https_tracking_url_links_the_tracking_number():
    html = email().html

    assert re.search(rf'<a href="{re.escape(TRACKING_URL)}"[^>]*>1Z999AA10123456784</a>', html)


@pytest.mark.parametrize(
    "url", ["http://track.example/1Z999", "javascript:alert(1)", "https://", "ftp://x.example/1"]
)
def test_tracking_url_that_is_not_https_is_not_a_link(url):
    rendered = email(tracking_url=url)
    body = render("shipping", "sms", "en", shipment(tracking_url=url)).text

    assert "href" not in rendered.html.split('class="footer"')[0].split("<body")[1]
    assert url not in rendered.html
    assert url not in rendered.text
    assert ">1Z999AA10123456784</td>" in rendered.html
    assert "Tracking number: 1Z999AA10123456784" in rendered.text
    assert url not in body
    assert body.endswith("Tracking number: 1Z999AA10123456784")


def test_unknown_estimated_delivery_leaves_out_its_row():
    rendered = email(estimated_delivery=None)

    assert "Estimated delivery" not in rendered.html
    assert "Estimated delivery" not in rendered.text


def test_css_is_inlined_into_style_attributes():
    html = email().html

    assert "<style" not in html
    assert re.search(r'<a class="button"[^>]*style="[^"]*color: #ffffff', html)
    assert re.search(r'<td class="button-cell"[^>]*style="[^"]*background-color: #111827', html)


def test_transactional_email_has_no_unsubscribe_link():
    rendered = email(unsubscribe_url=None)

    assert "Unsubscribe" not in rendered.html
    assert "Unsubscribe" not in rendered.text


@pytest.mark.parametrize(
    ("locale", "label"), [("en", "Unsubscribe"), ("es", "Cancelar la suscripción"), ("ru", "Отпис")]
)
def test_marketing_email_has_an_unsubscribe_link(locale, label):
    url = "https://careloop.example/u/abc?sig=1"

    rendered = email(locale, unsubscribe_url=url)

    assert re.search(
        r'<a href="https://careloop.example/u/abc\?sig=1"[^>]*>' + label, rendered.html
    )
    assert f"{url}" in rendered.text


def test_subject_stays_one_line_whatever_the_values_hold():
    rendered = email(order_name="#1042\r\nBcc: victim@example.com")

    assert rendered.subject == "Your order #1042 Bcc: victim@example.com has shipped"


def test_a_name_left_out_of_the_context_is_none():
    context = shipment()
    del context["unsubscribe_url"]

    rendered = render("shipping", "email", "en", context)

    assert "Unsubscribe" not in rendered.html


def test_context_names_outside_the_kind_are_refused():
    with pytest.raises(ValueError, match="first_name"):
        render("shipping", "email", "en", shipment(first_name="Ana"))


def test_unknown_kind_and_channel_are_refused():
    with pytest.raises(ValueError, match="kind"):
        render("refund", "email", "en", shipment())
    with pytest.raises(ValueError, match="channel"):
        render("shipping", "push", "en", shipment())


def test_every_kind_has_every_template_for_every_locale_and_uses_only_its_names():
    env = Environment()
    env.filters.update(FILTERS)  # ours, as the sandbox has them
    checked = 0
    for kind, names in KINDS.items():
        locales = [p for p in (TEMPLATE_DIR / kind).iterdir() if p.is_dir()]
        assert {p.name for p in locales} >= {"en"}
        for folder in locales:
            files = {p.name for p in folder.iterdir()}
            assert files == {"subject.txt", "email.html", "email.txt", "sms.txt"}, folder
            for path in folder.iterdir():
                used = meta.find_undeclared_variables(env.parse(path.read_text()))
                assert used <= names, (path, used - names)
                checked += 1
    assert checked >= 12


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sample_context_has_the_kinds_names_and_renders_everywhere(kind):
    sample = sample_context(kind)

    assert set(sample) == KINDS[kind]
    for folder in (TEMPLATE_DIR / kind).iterdir():
        for channel in ("email", "sms"):
            assert render(kind, channel, folder.name, sample).text


# -- shops' own templates ------------------------------------------------------


def test_override_renders_with_the_filters_in_the_render_locale_and_escapes():
    source = TemplateSource(
        subject="{{ shop_name }}: {{ order_name }} va en camino",
        html=(
            "<html><head><style>.box { color: #333333; }</style></head><body>"
            '<p class="box">Hola {{ customer_first_name }}, llega el '
            "{{ estimated_delivery|date }} ({{ total|money(currency) }})</p></body></html>"
        ),
        text="Hola {{ customer_first_name }}, llega el {{ estimated_delivery|date }}",
    )

    rendered = override(source, locale="es", customer_first_name="<b>Ana</b>")

    assert rendered.subject == "Northwind Outfitters: #1042 va en camino"
    assert "llega el 27 nov 2026 (1.284,50 €)" in spaced(rendered.html)
    assert "Hola &lt;b&gt;Ana&lt;/b&gt;" in rendered.html
    assert '<p class="box" style="color: #333333;">' in rendered.html
    assert "<style" not in rendered.html
    assert rendered.text == "Hola <b>Ana</b>, llega el 27 nov 2026"


def test_override_formats_constants_in_the_render_locale():
    # Jinja folds constant expressions while compiling, outside the render's locale.
    source = TemplateSource(None, None, "{{ 1284.5|money('EUR') }}")

    assert spaced(override(source, channel="sms", locale="es").text) == "1.284,50 €"
    assert override(source, channel="sms", locale="en").text == "€1,284.50"


def test_sms_override_renders():
    source = TemplateSource(None, None, "{{ order_name }}: {{ tracking_url }}")

    assert override(source, channel="sms").text == f"#1042: {TRACKING_URL}"


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self.__dict__ }}",
    "{% include '/etc/passwd' %}",
    "{{ config }}",
    "{{ shop_name.__class__.__base__ }}",
    "{{ estimated_delivery.__class__.__init__.__globals__ }}",
]


@pytest.mark.parametrize("attempt", ESCAPES)
@pytest.mark.parametrize("channel", ["email", "sms"])
def test_sandbox_escape_attempts_are_refused(attempt, channel):
    source = (
        email_source(f"<p>{attempt}</p>")
        if channel == "email"
        else TemplateSource(None, None, f"Hi {attempt}")
    )

    with pytest.raises(OverrideRefused) as refused:
        override(source, channel=channel)

    assert refused.value.problems
    assert isinstance(refused.value, TemplateError)  # what dispatch falls back on
    assert validate_override("shipping", channel, source)


def test_sandbox_refusal_is_reported_by_validation_as_not_allowed():
    source = TemplateSource(None, None, "Hi\n{{ shop_name.__class__.__mro__ }}")

    problems = validate_override("shipping", "sms", source)

    assert len(problems) == 1
    assert problems[0].field == "text"
    assert problems[0].line == 2
    assert "not allowed" in problems[0].message
    assert "unsafe" in problems[0].message


def test_a_loop_over_the_context_cannot_reach_the_file_system_or_globals():
    # Harmless constructs still render: reading values, a loop, conditions.
    source = TemplateSource(
        None, None, "{% for c in order_name %}[{{ c }}]{% endfor %}{% if carrier %}!{% endif %}"
    )

    assert override(source, channel="sms").text == "[#][1][0][4][2]!"


@pytest.mark.parametrize(
    ("template", "construct"),
    [
        ("{% set a = shop_name ~ shop_name %}{{ a }}", "{% set %}"),
        ("{% macro m() %}x{% endmacro %}{{ m() }}", "{% macro %}"),
        ("{{ shop_name.center(1000000000) }}", "calling"),
        ("{{ 9 ** 9 ** 9 }}", "arithmetic"),
        ("{{ 'x' * 1000000000 }}", "arithmetic"),
        ("{% for a in shop_name %}{% for b in shop_name %}x{% endfor %}{% endfor %}", "loop"),
        ("{% autoescape false %}{{ customer_first_name }}{% endautoescape %}", "autoescape"),
        ("{% with a = shop_name ~ shop_name %}{{ a }}{% endwith %}", "{% with %}"),
        ("{% extends 'layout.html' %}", "{% extends %}"),
    ],
)
def test_constructs_that_could_multiply_output_are_refused_with_their_line(template, construct):
    source = email_source(f"<p>\n{template}</p>")

    problems = validate_override("shipping", "email", source)

    assert any(p.field == "html" and p.line == 2 and construct in p.message for p in problems)
    with pytest.raises(OverrideRefused):
        override(source)


def test_override_output_over_100_kb_is_refused():
    # 56 characters of URL times 2 KB each: small source, large output.
    source = TemplateSource(None, None, "{% for c in tracking_url %}" + "x" * 2000 + "{% endfor %}")

    with pytest.raises(OverrideRefused, match="larger than 100,000 bytes"):
        override(source, channel="sms")
    assert any("larger than" in p.message for p in validate_override("shipping", "sms", source))


def test_a_loop_that_outputs_nothing_is_stopped_by_the_step_budget():
    # 50,000 turns of 300 tests: no output to bound, minutes of CPU unstopped.
    body = "{% if c %}{% endif %}" * 300
    source = TemplateSource(
        None, None, "{% for c in '" + "a" * 50_000 + "' %}" + body + "{% endfor %}"
    )

    with pytest.raises(OverrideRefused, match="more than 200,000 steps"):
        override(source, channel="sms")
    [problem] = validate_override("shipping", "sms", source)
    assert "more than 200,000 steps" in problem.message and problem.field == "text"


def test_the_step_counting_filter_is_not_a_templates_to_use():
    source = TemplateSource(None, None, "{% for c in 'abc'|_steps(0) %}{{ c }}{% endfor %}")

    [problem] = validate_override("shipping", "sms", source)
    assert "no filter named '_steps'" in problem.message


def test_a_loop_within_the_step_budget_renders():
    source = TemplateSource(None, None, "{% for c in order_name %}[{{ c }}]{% endfor %}")

    assert override(source, channel="sms", order_name="#1042").text == "[#][1][0][4][2]"


def test_override_under_the_bound_renders():
    source = email_source("<p>" + "x" * 90_000 + "</p>")

    assert len(override(source).html) > 90_000


def test_override_cannot_load_a_local_stylesheet(tmp_path):
    sheet = tmp_path / "secret.css"
    sheet.write_text("p { color: #abcdef; }")
    source = email_source(f'<html><head><link rel="stylesheet" href="{sheet}"></head><p>x</p>')

    html = override(source).html

    assert "abcdef" not in html
    assert "<p>x</p>" in html


def test_override_with_only_our_filters():
    source = TemplateSource(None, None, "Hi\n{{ shop_name|upper }}")

    problems = validate_override("shipping", "sms", source)

    assert [(p.field, p.line) for p in problems] == [("text", 2)]
    assert "upper" in problems[0].message
    assert "date, money" in problems[0].message


# -- validation ----------------------------------------------------------------


def test_valid_override_has_no_problems():
    source = TemplateSource(
        subject="{{ order_name }} has shipped",
        html="<p>{% if customer_first_name %}Hi {{ customer_first_name }}{% endif %}</p>"
        "<p>{{ estimated_delivery|date }} {{ total|money(currency) }}</p>"
        "{% if tracking_url is https_url %}<a href='{{ tracking_url }}'>track</a>{% endif %}",
        text="{{ order_name }} {{ tracking_url }}",
    )

    assert validate_override("shipping", "email", source) == []


def test_syntax_error_is_reported_with_its_line():
    source = email_source("<p>\nHello\n{% if carrier %}\n{{ carrier }\n{% endif %}</p>")

    problems = validate_override("shipping", "email", source)

    assert len(problems) == 1
    assert problems[0].field == "html"
    assert problems[0].line == 4
    assert problems[0].message.startswith("syntax error: ")


def test_unclosed_block_is_reported():
    source = TemplateSource(None, None, "{% if carrier %}\n{{ carrier }}")

    problems = validate_override("shipping", "sms", source)

    assert [p.field for p in problems] == ["text"]
    assert "endif" in problems[0].message


def test_unknown_variables_are_reported_with_their_lines():
    source = email_source("<p>{{ order_name }}</p>\n<p>{{ customer_name }}</p>", subject="{{ x }}")

    problems = validate_override("shipping", "email", source)

    assert [(p.field, p.line) for p in problems] == [("subject", 1), ("html", 2)]
    assert "'x'" in problems[0].message
    assert "'customer_name'" in problems[1].message
    assert "customer_first_name" in problems[1].message  # says what is known


def test_sms_over_1600_characters_with_sample_data_is_reported():
    source = TemplateSource(None, None, "{{ tracking_url }} " + "y" * 1550)

    problems = validate_override("shipping", "sms", source)

    assert [(p.field, p.line) for p in problems] == [("text", None)]
    assert "1600" in problems[0].message
    with pytest.raises(OverrideRefused):
        override(source, channel="sms")


def test_sms_of_1600_characters_is_accepted():
    source = TemplateSource(None, None, "z" * 1600)

    assert validate_override("shipping", "sms", source) == []


def test_subject_with_a_newline_is_reported():
    source = email_source(subject="Your order\n{{ order_name }}")

    problems = validate_override("shipping", "email", source)

    assert problems == [TemplateProblem("subject", 2, "the subject must be one line")]


@pytest.mark.parametrize("subject", ["Your order\r\n{{ order_name }}", "\rYour order"])
def test_subject_with_any_line_break_is_reported(subject):
    problems = validate_override("shipping", "email", email_source(subject=subject))

    assert [(p.field, p.line) for p in problems] == [("subject", 2)]


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_subject_ending_in_a_line_break_is_accepted(end):
    source = email_source(subject="{{ order_name }}" + end)

    assert validate_override("shipping", "email", source) == []
    assert override(source).subject == "#1042"


def test_missing_and_extra_parts_are_reported():
    email_problems = validate_override("shipping", "email", TemplateSource(None, " ", "x"))
    sms_problems = validate_override("shipping", "sms", TemplateSource("s", "<p>x</p>", "x"))

    assert [p.field for p in email_problems] == ["subject", "html"]
    assert [p.field for p in sms_problems] == ["subject", "html"]


def test_problems_in_the_branch_for_missing_values_are_found():
    # The sample has a first name; the second trial render has no values at all.
    source = TemplateSource(
        None,
        None,
        "{% if customer_first_name %}Hi {{ customer_first_name }}"
        "{% else %}{{ order_name.__class__ }}{% endif %}",
    )

    problems = validate_override("shipping", "sms", source)

    assert len(problems) == 1
    assert "not allowed" in problems[0].message


def test_filter_on_the_wrong_type_is_reported_once():
    source = TemplateSource(None, None, "{{ shop_name|date }}")

    problems = validate_override("shipping", "sms", source)

    assert len(problems) == 1
    assert "date" in problems[0].message


def test_markup_in_a_branch_the_check_never_rendered_is_refused_when_it_renders():
    source = email_source('{% if order_name == "#9" %}<script>x</script>{% endif %}<p>x</p>')
    assert validate_override("shipping", "email", source) == []  # neither sample reaches it
    with pytest.raises(OverrideRefused, match="<script> is not allowed"):
        override(source, order_name="#9")
