"""A standing fuzz of every webhook entry: correctly signed deliveries built
from the fixtures with some fields made hostile (tests/webhook_fuzzing.py).
None may be answered 5xx, fail in the worker on anything but a readable
PayloadError, or stop another shop's webhooks. A few dozen per entry here;
bench/fuzz_webhooks.py runs thousands."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from webhook_fuzzing import SOURCES, Harness, deliveries


@pytest.mark.parametrize("source", SOURCES)
def test_signed_mutated_payloads_end_settled_and_other_shops_go_on(
    source, client, shop, other_shop, rt
):
    harness = Harness(client, rt, shop.id, other_shop.domain)

    # The examples share the test's database: each looks only at its own rows.
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(delivery=deliveries(source))
    def attempt(delivery):
        verdict = harness.attempt(delivery)
        assert verdict.problem is None, (verdict, delivery.topic, delivery.payload)

    attempt()
