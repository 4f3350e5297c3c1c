"""HTML pages for merchants and support teams (`/app/...`): one module per
subject, all on the blueprint of `base` (sign-in in both modes, CSRF, CSP)."""

from app.web.pages import (
    api_tokens,
    helpdesk,
    home,
    message_templates,
    orders,
    retention,
    rules,
    settings,
    support,
)
from app.web.pages.base import bp

__all__ = [
    "api_tokens",
    "bp",
    "helpdesk",
    "home",
    "message_templates",
    "orders",
    "retention",
    "rules",
    "settings",
    "support",
]
