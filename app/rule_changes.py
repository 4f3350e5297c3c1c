"""A checked rule saved or deleted, and what that does to the messages it
queued: the one place the API and the rule page both go through.

A rule switched off or deleted withdraws its messages still waiting in the
outbox (the merchant said stop). What those messages were about may also be
answered for by other rules still on (a catch-all beside a specific rule; a
delay message covers the order's other delays): it is decided again at
once (`delay_checks.retell`, `rules.retell_stages`), so switching one rule
off never silences another.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from app import delay_checks, rule_book, rules
from app.models import Rule


def saved(session: Session, rule: Rule, was_enabled: bool, now: datetime) -> None:
    """An edit of `rule`, already checked (`rule_book.check`): stamped when
    it changed anything, and when it switched the rule off, its queued
    messages withdrawn. The caller commits."""
    if session.is_modified(rule):
        rule.updated_at = now
    session.add(rule)
    if was_enabled and not rule.enabled:
        withdrawn = rule_book.withdraw_queued(
            session, rule, f"rule {rule.name!r} switched off", now
        )
        session.flush()
        _retell(session, withdrawn, now)


def deleted(session: Session, rule: Rule, now: datetime) -> None:
    """`rule` deleted: its queued messages withdrawn, its sent ones kept on
    record. The row stays, off and marked, so that those messages still
    name the rule that sent them; no list shows it again. The caller
    commits."""
    withdrawn = rule_book.withdraw_queued(session, rule, f"rule {rule.name!r} deleted", now)
    rule.enabled, rule.deleted_at, rule.updated_at = False, now, now
    session.add(rule)
    session.flush()
    _retell(session, withdrawn, now)


def _retell(session: Session, withdrawn: list, now: datetime) -> None:
    """What the withdrawn messages were about, decided again by the rules
    still on: the delays they covered, the shipping stages they told."""
    delay_checks.retell(session, withdrawn, now)
    rules.retell_stages(session, withdrawn, now)
