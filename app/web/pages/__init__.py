"""HTML pages for merchants and support teams (`/app/...`): one module per
subject, all on the blueprint of `base` (sign-in, CSRF)."""

from app.web.pages import orders, rules
from app.web.pages.base import bp

__all__ = ["bp", "orders", "rules"]
