"""The shop's proactive rules: list, read, create, change, delete, preview.

A rule switched off or deleted withdraws its messages still waiting in the
outbox (suppressed, with the reason); any other change applies to messages
queued from then on (see the README, "Proactive rules")."""

from __future__ import annotations

from sqlmodel import Session

from app import rule_book, rule_changes
from app.models import Rule
from app.rule_preview import preview
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response, refused
from app.web.schemas import (
    RuleAddress,
    RuleChange,
    RuleCreate,
    RuleDocument,
    RuleList,
    RulePreview,
    WouldTell,
)

ONE = "/rules/<row_id:rule_id>"
_LISTS = ("channels", "countries", "tags", "shipping_methods")


def document(rule: Rule) -> RuleDocument:
    values = rule.model_dump()
    for name in _LISTS:
        values[name] = rule_book.split(values[name])
    return RuleDocument.model_validate(values)


def _store(rule: Rule, values: dict) -> None:
    for name, value in values.items():
        setattr(rule, name, ",".join(value) if name in _LISTS else value)


def _refused(problem: rule_book.RuleProblem):
    return refused("invalid_rule", problem.field, problem.reason)


def _find(session: Session, rule_id: int) -> Rule | None:
    return session.exec(rule_book.of_shop(shop_id()).where(Rule.id == rule_id)).first()


def _not_found(rule_id: int):
    return error_response(404, "not_found", f"no rule {rule_id} in this shop")


@api.route("GET", "/rules", response=RuleList)
def get_rules():
    """The shop's rules, in the order they were made."""
    with Session(runtime().engine) as session:
        rows = session.exec(rule_book.of_shop(shop_id()).order_by(Rule.id)).all()
        return RuleList(rules=[document(r) for r in rows])


@api.route("GET", ONE, path=RuleAddress, response=RuleDocument, errors=(404,))
def get_rule(path: RuleAddress):
    """One rule."""
    with Session(runtime().engine) as session:
        rule = _find(session, path.rule_id)
        return document(rule) if rule else _not_found(path.rule_id)


@api.route("POST", "/rules", body=RuleCreate, response=RuleDocument, status=201, errors=(422,))
def post_rule(body: RuleCreate):
    """Add a rule; one that cannot work is refused with the field and the reason."""
    rt = runtime()
    now = rt.clock.now()
    values = body.model_dump()
    values["template_kind"] = values["template_kind"] or rule_book.TRIGGERS[body.trigger][0]
    rule = Rule(shop_id=shop_id(), created_at=now, updated_at=now, template_kind="",
                channels="", category="", name="", trigger="")  # fmt: skip
    _store(rule, values)
    try:
        rule_book.check(rule)
    except rule_book.RuleProblem as problem:
        return _refused(problem)
    with Session(rt.engine) as session:
        session.add(rule)
        session.commit()
        session.refresh(rule)
        return document(rule)


@api.route("PATCH", ONE, path=RuleAddress, body=RuleChange, response=RuleDocument,
           errors=(404, 422))  # fmt: skip
def patch_rule(path: RuleAddress, body: RuleChange):
    """Change the fields given. Switching a rule off withdraws its queued messages."""
    rt = runtime()
    now = rt.clock.now()
    with Session(rt.engine) as session:
        rule = _find(session, path.rule_id)
        if rule is None:
            return _not_found(path.rule_id)
        was_enabled = rule.enabled
        values = body.model_dump(exclude_unset=True)
        if "trigger" in values and "template_kind" not in values:
            values["template_kind"] = rule_book.TRIGGERS[values["trigger"]][0]
        _store(rule, values)
        try:
            rule_book.check(rule)
        except rule_book.RuleProblem as problem:
            session.rollback()
            return _refused(problem)
        rule_changes.saved(session, rule, was_enabled, now)
        session.commit()
        session.refresh(rule)
        return document(rule)


@api.route("DELETE", ONE, path=RuleAddress, status=204, errors=(404,))
def delete_rule(path: RuleAddress):
    """Delete a rule; its queued messages are withdrawn, its sent ones stay on record."""
    rt = runtime()
    with Session(rt.engine) as session:
        rule = _find(session, path.rule_id)
        if rule is None:
            return _not_found(path.rule_id)
        rule_changes.deleted(session, rule, rt.clock.now())
        session.commit()
    return "", 204


@api.route("GET", ONE + "/preview", path=RuleAddress, response=RulePreview, errors=(404,))
def get_rule_preview(path: RuleAddress):
    """Who the rule would tell right now, and what; nothing is sent."""
    rt = runtime()
    with Session(rt.engine) as session:
        rule = _find(session, path.rule_id)
        if rule is None:
            return _not_found(path.rule_id)
        found = preview(session, rule, rt.clock.now())
        session.rollback()  # read-only, whatever the decisions loaded
    return RulePreview(
        rule_id=path.rule_id,
        would_tell=[
            WouldTell(
                order_id=w.order_shopify_id, order_name=w.order_name, kind=w.kind, about=w.about,
                channel=w.channel, recipient=w.recipient, not_sent_because=w.not_sent_because,
            )
            for w in found
        ],
    )  # fmt: skip
