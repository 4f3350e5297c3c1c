"""CareLoop: proactive customer care for Shopify stores."""

from app.factory import create_app

__all__ = ["create_app"]
