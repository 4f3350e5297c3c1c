"""How many shop templates one web process renders at once.

Checking and rendering a shop's template costs up to ~0.1 s of CPU (see the
bounds in `notifications.rendering`), and under the GIL a thread doing it
slows every other thread of the process, webhooks included: 16 previews at
once raised webhook latency from 11 ms to 27 s. So a process renders at most
`TOTAL` templates at a time and a shop at most `PER_SHOP`; a request over
either is refused at once (429 for the shop over its share, 503 when the
process is full), never queued, so that it holds no thread while it waits.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter

from flask import g

from app.web.errors import error_response

TOTAL = 2
PER_SHOP = 1
RETRY_AFTER_SECONDS = 1


class RenderSlots:
    """Counts renders in flight, per process and per shop."""

    def __init__(self, total: int = TOTAL, per_shop: int = PER_SHOP):
        self.total, self.per_shop = total, per_shop
        self._lock = threading.Lock()
        self._by_shop: Counter[int] = Counter()

    def take(self, shop_id: int) -> int | None:
        """Take a slot for `shop_id`: None if taken, else the HTTP status that
        says why not (429: this shop has its share; 503: the process is full)."""
        with self._lock:
            if self._by_shop[shop_id] >= self.per_shop:
                return 429
            if self._by_shop.total() >= self.total:
                return 503
            self._by_shop[shop_id] += 1
            return None

    def give_back(self, shop_id: int) -> None:
        with self._lock:
            self._by_shop[shop_id] -= 1
            if self._by_shop[shop_id] <= 0:
                del self._by_shop[shop_id]


SLOTS = RenderSlots()


def one_render_slot(view):
    """Run `view` (after `require_shop`) in a render slot of the signed-in shop."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        refused = SLOTS.take(g.shop_id)
        if refused == 429:
            response = error_response(
                429,
                "too_many_renders",
                "this shop already has a template rendering; retry in a second",
            )
        elif refused == 503:
            response = error_response(
                503, "busy", "templates are being rendered for other shops; retry in a second"
            )
        else:
            try:
                return view(*args, **kwargs)
            finally:
                SLOTS.give_back(g.shop_id)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    return wrapper
