"""Retry delays: exponential backoff with jitter, for every retry we schedule
(the inbox, the outbox, calls to Shopify's Admin API).

Jitter spreads the retries of many failures that happened together (a
provider outage) so that they do not all come back at the same moment.
"""

from __future__ import annotations

import random
from collections.abc import Callable

JITTER = 0.2  # up to 20% added to each delay


def backoff_seconds(
    attempt: int,
    base: float,
    cap: float | None = None,
    *,
    jitter: float = JITTER,
    rand: Callable[[], float] = random.random,
) -> float:
    """The delay before retry number `attempt` (1 for the first): `base`
    doubled each time, at most `cap`, plus up to `jitter` of itself."""
    delay = base * 2 ** max(attempt - 1, 0)
    if cap is not None:
        delay = min(delay, cap)
    return delay * (1 + rand() * jitter)
