"""API tokens: list, issue (shown once), revoke; and the signed sign-in links
a merchant sends to their support team (issue, revoke all)."""

from __future__ import annotations

from datetime import timedelta

from flask import g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlmodel import Session

from app import sign_in_links
from app.models import Shop
from app.shops import issue_token, revoke_token, tokens_of
from app.web.context import runtime
from app.web.pages.base import bp, check_csrf, signed_in
from app.web.params import parse_whole_number

LINK_HOURS = (1, 24, 24 * 7)


def _page(status: int = 200, **extra):
    with Session(runtime().engine) as db:
        tokens = tokens_of(db, g.shop.id)
    return render_template(
        "app/api_tokens.html", shop=g.shop, tokens=tokens, link_hours=LINK_HOURS, **extra
    ), status


@bp.get("/api-tokens")
@signed_in
def api_tokens():
    return _page(revoked=request.args.get("revoked"))


@bp.post("/api-tokens")
@signed_in
def api_token_issue():
    check_csrf()
    rt = runtime()
    with Session(rt.engine) as db:
        token = issue_token(db, db.get(Shop, g.shop.id), rt.clock.now())
        db.commit()
    return _page(201, new_token=token)


@bp.post("/api-tokens/<token_id>/revoke")
@signed_in
def api_token_revoke(token_id: str):
    check_csrf()
    number = parse_whole_number(token_id, 1, 2**31 - 1)
    rt = runtime()
    with Session(rt.engine) as db:
        done = number is not None and revoke_token(db, g.shop.id, number, rt.clock.now())
        db.commit()
    if not done:
        return _page(404, error=_("No such working token in this shop."))
    return redirect(url_for("pages.api_tokens", revoked="token"))


@bp.post("/sign-in-links")
@signed_in
def sign_in_link_issue():
    check_csrf()
    hours = parse_whole_number(request.form.get("hours", ""), 1, 24 * 30)
    if hours not in LINK_HOURS:
        return _page(400, error=_("Choose how long the link works."))
    rt = runtime()
    link = sign_in_links.issue(
        g.shop, rt.settings.secret_key, rt.clock.now(), timedelta(hours=hours)
    )
    url = rt.settings.public_url + url_for("pages.sign_in_link", link=link, embedded=None,
                                           shop=None, host=None, locale=None)  # fmt: skip
    return _page(201, new_link=url, link_hours_chosen=hours)


@bp.post("/sign-in-links/revoke")
@signed_in
def sign_in_links_revoke():
    check_csrf()
    rt = runtime()
    with Session(rt.engine) as db:
        sign_in_links.revoke_all(db, db.get(Shop, g.shop.id), rt.clock.now())
        db.commit()
    return redirect(url_for("pages.api_tokens", revoked="links"))
