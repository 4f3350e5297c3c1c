"""HTML pages for merchants and support teams (`/app/...`): one module per
subject, all on the blueprint of `base` (sign-in, CSRF)."""

from app.web.pages import helpdesk, orders
from app.web.pages.base import bp

__all__ = ["bp", "helpdesk", "orders"]
