"""What customers and message providers send back: one-tap unsubscribe,
Twilio's delivery reports and inbound STOP/START, Postmark's delivery, bounce
and complaint reports.

These are applied in the request rather than through the inbox: each is one
idempotent row change, committed before we answer 200, and a failure to
commit answers 5xx so that the provider retries. Nothing accepted is lost.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, jsonify, render_template, request
from sqlmodel import Session, select

from app.models import Notification, Shop
from app.web.body import read_body
from app.web.context import runtime
from app.web.errors import error_response
from notifications import outbox
from notifications.phone import keyword_action, to_e164
from notifications.postmark import parse_webhook, verify_webhook_auth
from notifications.twilio import (
    SIGNATURE_HEADER,
    UNSUBSCRIBED,
    UntrackedStatus,
    parse_inbound,
    parse_status_callback,
    verify_signature,
)
from notifications.unsubscribe import read_token

bp = Blueprint("messaging", __name__)
log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


# --- unsubscribe ------------------------------------------------------------


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    """GET shows a confirmation page; POST unsubscribes (the page's button,
    and mail clients' RFC 8058 one-click `List-Unsubscribe=One-Click`)."""
    rt = runtime()
    target = read_token(rt.settings.secret_key, token)
    if target is None:
        abort(404, description="This unsubscribe link is not valid.")
    shop_id, channel, address = target
    with Session(rt.engine) as session:
        shop = session.get(Shop, shop_id)
        if shop is None:
            abort(404, description="This unsubscribe link is not valid.")
        shop_name = shop.name
        if request.method == "POST":
            outbox.opt_out(session, shop_id, channel, address, "unsubscribe link", rt.clock.now())
            session.commit()
    done = request.method == "POST"
    return render_template(
        "unsubscribe.html", shop_name=shop_name, channel=channel, address=address, done=done
    )


# --- Twilio -------------------------------------------------------------------


def _twilio_verified() -> bool:
    """X-Twilio-Signature over the URL Twilio called (our public URL) and the
    form parameters."""
    settings = runtime().settings
    if not settings.twilio_auth_token:
        return False
    query = request.query_string.decode()
    url = f"{settings.public_url}{request.path}" + (f"?{query}" if query else "")
    return verify_signature(
        settings.twilio_auth_token, url, list(request.form.items(multi=True)),
        request.headers.get(SIGNATURE_HEADER, ""),
    )  # fmt: skip


@bp.post("/webhooks/twilio/status")
def twilio_status():
    read_body(request.max_content_length, cache=True)  # 413, not a cut body
    if not _twilio_verified():
        return error_response(401, "invalid_signature", "X-Twilio-Signature does not match")
    try:
        report = parse_status_callback(request.form)
    except UntrackedStatus:
        return jsonify({"status": "ignored"})
    except (KeyError, ValueError) as exc:
        return error_response(400, "bad_request", f"not a Twilio status callback: {exc}")
    rt = runtime()
    with Session(rt.engine) as session:
        notification = session.exec(
            select(Notification).where(Notification.provider_message_id == report.message_sid)
        ).first()
        if notification is None:
            return jsonify({"status": "unknown message"}), 200
        now = rt.clock.now()
        if notification.status == outbox.SENT and report.status == "delivered":
            outbox.transition(session, notification, outbox.DELIVERED, now, None)
        elif notification.status in (outbox.SENT, outbox.DELIVERED) and report.status in (
            "undelivered",
            "failed",
        ):
            detail = f"twilio {report.status}" + (
                f" {report.error_code}" if report.error_code else ""
            )
            outbox.transition(session, notification, outbox.FAILED, now, detail)
            if report.unsubscribed:
                outbox.opt_out(session, notification.shop_id, "sms", notification.recipient,
                               f"twilio: {UNSUBSCRIBED}", now)  # fmt: skip
        session.commit()
    return jsonify({"status": "recorded"})


@bp.post("/webhooks/twilio/inbound")
def twilio_inbound():
    read_body(request.max_content_length, cache=True)  # 413, not a cut body
    if not _twilio_verified():
        return error_response(401, "invalid_signature", "X-Twilio-Signature does not match")
    try:
        message = parse_inbound(request.form)
    except (KeyError, ValueError) as exc:
        return error_response(400, "bad_request", f"not a Twilio inbound message: {exc}")
    action = keyword_action(message.body)
    sender = to_e164(message.from_, None)
    if action and sender:
        rt = runtime()
        with Session(rt.engine) as session:
            for shop_id in _shops_for_number(session, message.to):
                if action == "stop":
                    outbox.opt_out(session, shop_id, "sms", sender, "sms STOP", rt.clock.now())
                else:
                    outbox.opt_in(session, shop_id, "sms", sender)
            session.commit()
    # Twilio answers STOP/START itself (Advanced Opt-Out); we add nothing.
    return Response(EMPTY_TWIML, mimetype="text/xml")


def _shops_for_number(session: Session, number: str) -> list[int]:
    """The shops that send from `number`; every shop if it is our shared one."""
    shops = session.exec(select(Shop.id).where(Shop.sms_from == number)).all()
    if not shops and number == runtime().settings.twilio_from:
        shops = session.exec(select(Shop.id)).all()
    return list(shops)


# --- Postmark -------------------------------------------------------------------


@bp.post("/webhooks/email/postmark")
def postmark_report():
    read_body(request.max_content_length, cache=True)  # 413, not a cut body
    settings = runtime().settings
    if not settings.postmark_webhook_password or not verify_webhook_auth(
        "postmark", settings.postmark_webhook_password, request.headers.get("Authorization", "")
    ):
        return error_response(401, "unauthorized", "send the webhook's basic-auth credentials")
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # nested past the parser's limit
        payload = None
    if not isinstance(payload, dict):
        return error_response(400, "malformed_json", "body is not a JSON object")
    try:
        report = parse_webhook(payload)
    except (KeyError, ValueError) as exc:
        return error_response(400, "bad_payload", f"not a Postmark webhook: {exc}")
    if report is None:
        return jsonify({"status": "ignored"})
    rt = runtime()
    with Session(rt.engine) as session:
        notification = session.exec(
            select(Notification).where(Notification.provider_message_id == report.provider_id)
        ).first()
        if notification is None:
            return jsonify({"status": "unknown message"})
        now = rt.clock.now()
        if report.status == "delivered" and notification.status == outbox.SENT:
            outbox.transition(session, notification, outbox.DELIVERED, now, report.detail)
        elif report.status == "bounced" and report.permanent:
            outbox.transition(session, notification, outbox.BOUNCED, now, report.detail)
            outbox.opt_out(session, notification.shop_id, "email", notification.recipient,
                           "hard bounce", now)  # fmt: skip
        elif report.status == "complained":
            outbox.opt_out(session, notification.shop_id, "email", notification.recipient,
                           "spam complaint", now)  # fmt: skip
        session.commit()
    return jsonify({"status": "recorded"})
