"""The survey page customers reach from a survey's email stars or SMS link:
`/s/<token>` (the token: `app.surveys.token_for`).

Opening the link records nothing: mail scanners and link previews open
every link. GET shows the rating the customer clicked (`?r=4`) pre-selected;
one tap on the button POSTs it. Then an optional comment. The forms carry a
token bound to the survey's own token (`app.surveys.form_token`), checked in
constant time: a cross-site form cannot post for a survey it does not know,
and no cookie is needed. Plain HTML, no JavaScript, in the customer's
language (en, es, ru: the strings are below, one dict per language).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, render_template, request
from sqlmodel import Session

from app.models import Shop
from app.surveys import (
    CHANGEABLE,
    expired,
    form_token,
    record_comment,
    record_rating,
    survey_for_token,
)
from app.web.context import runtime

bp = Blueprint("survey", __name__)
MAX_COMMENT = 2000

TEXT: dict[str, dict[str, object]] = {
    "en": {
        "lang": "en",
        "title": "How did we do?",
        "ask": "How would you rate the help you received from {shop}?",
        "stars": ["Poor", "Fair", "Good", "Very good", "Excellent"],
        "send": "Send my rating",
        "thanks": "Thank you! You rated us {rating} out of 5.",
        "change": "You can change your rating until {until}.",
        "comment": "Anything you would like to tell us? (optional)",
        "send_comment": "Send comment",
        "comment_thanks": "Thank you for your comment.",
        "expired_title": "This survey has closed",
        "expired": "Ratings can be given or changed for 14 days after the survey was sent.",
        "invalid_title": "This link is not valid",
        "invalid": "Please use the link from your email or text message.",
        "choose": "Please choose a rating from 1 to 5.",
    },
    "es": {
        "lang": "es",
        "title": "¿Qué tal lo hicimos?",
        "ask": "¿Cómo valorarías la ayuda que recibiste de {shop}?",
        "stars": ["Mala", "Regular", "Buena", "Muy buena", "Excelente"],
        "send": "Enviar mi valoración",
        "thanks": "¡Gracias! Nos has dado {rating} de 5.",
        "change": "Puedes cambiar tu valoración hasta el {until}.",
        "comment": "¿Quieres contarnos algo más? (opcional)",
        "send_comment": "Enviar comentario",
        "comment_thanks": "Gracias por tu comentario.",
        "expired_title": "Esta encuesta ha terminado",
        "expired": "Las valoraciones se pueden dar o cambiar durante 14 días desde el envío.",
        "invalid_title": "Este enlace no es válido",
        "invalid": "Usa el enlace de tu correo o de tu SMS.",
        "choose": "Elige una valoración del 1 al 5.",
    },
    "ru": {
        "lang": "ru",
        "title": "Как мы справились?",
        "ask": "Как вы оцениваете помощь, которую получили от {shop}?",
        "stars": ["Плохо", "Так себе", "Хорошо", "Очень хорошо", "Отлично"],
        "send": "Отправить оценку",
        "thanks": "Спасибо! Ваша оценка: {rating} из 5.",
        "change": "Оценку можно изменить до {until}.",
        "comment": "Хотите что-нибудь добавить? (необязательно)",
        "send_comment": "Отправить комментарий",
        "comment_thanks": "Спасибо за комментарий.",
        "expired_title": "Опрос завершён",
        "expired": "Оценку можно поставить или изменить в течение 14 дней после отправки опроса.",
        "invalid_title": "Ссылка недействительна",
        "invalid": "Воспользуйтесь ссылкой из письма или SMS.",
        "choose": "Выберите оценку от 1 до 5.",
    },
}


def _text(locale: str | None) -> dict[str, object]:
    language = (locale or "en").replace("_", "-").split("-")[0].lower()
    return TEXT.get(language, TEXT["en"])


def _page(template: str, status: int = 200, **values):
    return render_template(f"survey/{template}.html", **values), status


@bp.route("/s/<token>", methods=["GET", "POST"])
def survey_page(token: str):
    rt = runtime()
    now = rt.clock.now()
    with Session(rt.engine, expire_on_commit=False) as session:
        survey = survey_for_token(session, rt.settings.secret_key, token)
        if survey is None:
            return _page("invalid", 404, t=_text(request.accept_languages.best))
        t = _text(survey.locale)
        if expired(survey, now):
            return _page("expired", 410, t=t)
        shop = session.get(Shop, survey.shop_id)
        values = {"t": t, "shop": shop.name, "form": form_token(rt.settings.secret_key, token),
                  "until": (survey.sent_at + CHANGEABLE).date().isoformat()}  # fmt: skip
        if request.method == "GET":
            chosen = _rating(request.args.get("r")) or survey.rating
            return _page("rate", survey=survey, chosen=chosen, **values)
        if not hmac.compare_digest(request.form.get("form", ""), values["form"]):
            return _page("invalid", 403, t=t)
        if "comment" in request.form:
            comment = request.form["comment"].strip()[:MAX_COMMENT]
            if comment:
                record_comment(session, survey, comment, now)
                session.commit()
            return _page("thanks", survey=survey, commented=True, **values)
        rating = _rating(request.form.get("rating"))
        if rating is None:
            return _page("rate", 400, survey=survey, chosen=None, error=True, **values)
        record_rating(session, survey, rating, now)
        session.commit()
        return _page("thanks", survey=survey, commented=False, **values)


def _rating(raw: str | None) -> int | None:
    return int(raw) if raw in ("1", "2", "3", "4", "5") else None
