"""The long version of tests/test_webhook_fuzz.py: thousands of correctly
signed, mutated deliveries to every webhook entry, on PostgreSQL (where
column lengths, BIGINT and NUMERIC are enforced) and SQLite, with a summary.

    .venv/bin/python bench/fuzz_webhooks.py [--examples 1000] [--backend postgresql|sqlite|both]

`--examples` is per source (Shopify, ShipBob, AfterShip, Standard Webhooks).
Each delivery goes through the Flask app, the inbox and the worker, followed
by a good webhook of another shop (tests/webhook_fuzzing.py says what must
hold). Nothing is asserted: the script prints how deliveries were answered
and ended, and every delivery that broke a rule, and exits 1 if any did.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

# Imported while bench/ is still first on sys.path, where Python put it for this script.
from _common import PG_ADMIN_URL, create_databases, drop_databases, sa_url

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from cryptography.fernet import Fernet  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from sqlmodel import Session  # noqa: E402
from webhook_fuzzing import SOURCES, Harness, Verdict, deliveries  # noqa: E402

from app import migrate  # noqa: E402
from app.clock import Clock  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.factory import create_app  # noqa: E402
from app.runtime import build_runtime  # noqa: E402
from app.shops import add_shop  # noqa: E402
from support import OTHER_SHOP_DOMAIN, SHOP_DOMAIN, TEST_SECRET  # noqa: E402


def run(url: str, examples: int, instance: Path) -> dict[str, list[tuple[Verdict, str]]]:
    """Every source's verdicts, with each delivery's topic, on the database at `url`."""
    migrate.upgrade(url)
    engine = make_engine(url)
    settings_ = Settings(
        env="test", database_url=url, secret_key="bench-secret-key",
        encryption_keys=(Fernet.generate_key().decode(),), shopify_api_key="bench-client-id",
        shopify_api_secret=TEST_SECRET, instance_dir=instance, webhook_max_bytes=256 * 1024,
    )  # fmt: skip
    app = create_app(build_runtime(settings_, engine=engine, clock=Clock()))
    rt = app.extensions["careloop"]
    with Session(engine) as session:
        shop, _ = add_shop(session, SHOP_DOMAIN, datetime.now(UTC))
        add_shop(session, OTHER_SHOP_DOMAIN, datetime.now(UTC))
        session.commit()
        shop_id = shop.id
    harness = Harness(app.test_client(), rt, shop_id, OTHER_SHOP_DOMAIN)
    results: dict[str, list[tuple[Verdict, str]]] = {}
    for source in SOURCES:
        verdicts: list[tuple[Verdict, str]] = []

        # Generation only: nothing fails, so there is nothing to shrink.
        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(delivery=deliveries(source))
        def attempt(delivery):
            verdicts.append((harness.attempt(delivery), delivery.topic))  # noqa: B023 (run here)

        started = time.monotonic()
        attempt()
        results[source] = verdicts
        print(f"  {source}: {len(verdicts)} deliveries in {time.monotonic() - started:.1f} s",
              flush=True)  # fmt: skip
    engine.dispose()
    return results


def summarize(backend: str, results: dict[str, list[tuple[Verdict, str]]]) -> int:
    """Print the figures; return how many deliveries broke a rule."""
    broken = 0
    print(f"\n{backend}")
    print(f"  {'source':<10} {'sent':>6} {'2xx':>6} {'4xx':>6} {'5xx':>5} "
          f"{'done':>6} {'parked':>6} {'dead':>6} {'other':>6} {'broken':>6}")  # fmt: skip
    reasons: Counter[str] = Counter()
    for source, verdicts in results.items():
        answers = Counter(v.status_code // 100 for v, _ in verdicts)
        ends = Counter((v.stored or "").split(" ")[0] for v, _ in verdicts if v.stored)
        other_ok = sum(v.other_shop == "done" for v, _ in verdicts)
        problems = [(v, topic) for v, topic in verdicts if v.problem]
        broken += len(problems)
        print(f"  {source:<10} {len(verdicts):>6} {answers[2]:>6} {answers[4]:>6} {answers[5]:>5} "
              f"{ends['done']:>6} {ends['parked']:>6} {ends['dead']:>6} {other_ok:>6} "
              f"{len(problems):>6}")  # fmt: skip
        for verdict, _ in verdicts:
            if verdict.stored and verdict.stored.startswith("dead "):
                reasons[_shape(verdict.stored.removeprefix("dead PayloadError: "))] += 1
        kinds = Counter(
            f"{topic}: {verdict.problem}"[:160].replace("\n", " ") for verdict, topic in problems
        )
        for kind, count in kinds.most_common(5):
            print(f"    BROKEN {count:>4} x {source} {kind}")
    print("  most common dead-letter reasons:")
    for reason, count in reasons.most_common(8):
        print(f"    {count:>5}  {reason}")
    return broken


def _shape(reason: str) -> str:
    """A reason without the field's path, so that reasons group by kind."""
    words = reason.split(" ")
    return " ".join(words[1:]) if len(words) > 1 else reason


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="deliveries per source")
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    options = parser.parse_args()
    logging.disable(logging.ERROR)  # each dead letter and 5xx logs; the summary counts them
    backends = ["postgresql", "sqlite"] if options.backend == "both" else [options.backend]
    broken = 0
    started = time.monotonic()
    for backend in backends:
        with tempfile.TemporaryDirectory() as scratch:
            print(f"{backend}: {options.examples} deliveries per source", flush=True)
            if backend == "sqlite":
                results = run(f"sqlite:///{scratch}/fuzz.db", options.examples, Path(scratch))
            else:
                name = f"careloop_fuzz_{uuid.uuid4().hex[:10]}"
                create_databases(name)
                try:
                    results = run(sa_url(name, PG_ADMIN_URL), options.examples, Path(scratch))
                finally:
                    drop_databases(name)
        broken += summarize(backend, results)
    print(f"\n{broken} broken deliveries; {time.monotonic() - started:.0f} s in all")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
