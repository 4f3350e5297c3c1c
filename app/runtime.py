"""The runtime: what every process needs, built in one place.

The web app, `careloop worker`, `careloop scheduler` and every other command
build a `Runtime` here from their settings; only the web process then wraps
it in a Flask app (`app.factory.create_app`). Building one connects to
nothing: the engine connects on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.crypto import SecretBox
from app.db import make_engine
from integrations.shopify_auth import OAuthClient


@dataclass
class Runtime:
    """What every request, job and command needs: settings, database, time,
    the keys for secrets at rest and the clients of outside systems."""

    settings: Settings
    engine: Engine
    clock: Clock
    secrets: SecretBox
    oauth: OAuthClient  # Shopify's token endpoint (code grant, token exchange, refresh)
    # Set after a webhook is stored so that an in-process worker (`careloop
    # run`) picks it up at once instead of at its next poll.
    inbox_wakeup: threading.Event = field(default_factory=threading.Event)


def build_runtime(
    settings: Settings, *, engine: Engine | None = None, clock: Clock | None = None
) -> Runtime:
    """The runtime for `settings`; tests pass their own engine and clock."""
    clock = clock or Clock()
    return Runtime(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        clock=clock,
        secrets=SecretBox(settings.encryption_keys),
        oauth=OAuthClient(
            settings.shopify_api_key,
            settings.shopify_api_secret,
            timeout_seconds=settings.provider_timeout_seconds,
            base_url_for=lambda shop: settings.shopify_url_template.format(shop=shop),
            now=clock.now,
        ),
    )
