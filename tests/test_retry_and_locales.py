"""The one retry delay (inbox, outbox, Shopify's Admin API) and the one
locale fallback (our templates and the shops' own)."""

from __future__ import annotations

import pytest

from app.retry import JITTER, backoff_seconds
from notifications.rendering import locale_chain


def test_backoff_doubles_from_the_base_up_to_the_cap():
    without_jitter = [backoff_seconds(n, 10, 60, rand=lambda: 0.0) for n in range(1, 6)]
    assert without_jitter == [10, 20, 40, 60, 60]


def test_jitter_adds_at_most_its_share_of_the_delay():
    assert backoff_seconds(3, 10, 60, rand=lambda: 1.0) == pytest.approx(40 * (1 + JITTER))
    assert 40 <= backoff_seconds(3, 10, 60) <= 40 * (1 + JITTER)


@pytest.mark.parametrize("spelling", ["es_MX", "es-MX", "es-mx", "ES_mx"])
def test_a_regional_locale_falls_back_to_its_language_however_it_is_spelled(spelling):
    assert locale_chain(spelling) == ["es-MX", "es"]


def test_something_that_is_not_a_locale_has_no_fallback():
    assert locale_chain("not a locale") == []
