"""Per-shop scheduled work as rows: each slot is queued once per shop, daily
work follows the shop's own clock, and a failing shop's job is recorded and
retried without holding up any other shop's."""

from __future__ import annotations

from datetime import time, timedelta

from sqlmodel import Session, select

from app import shop_jobs
from app.models import Shop, ShopJob
from app.shop_jobs import DailyAt, Every, ShopSchedule
from support import set_shop


def jobs(engine) -> list[tuple[str, str, str, str]]:
    """(shop domain, kind, slot, status) of every job, sorted."""
    with Session(engine) as session:
        rows = session.exec(
            select(Shop.domain, ShopJob.kind, ShopJob.slot, ShopJob.status).join(
                Shop, Shop.id == ShopJob.shop_id
            )
        ).all()
    return sorted(tuple(row) for row in rows)


def test_each_slot_is_queued_once_per_shop_however_often_the_scheduler_runs(
    db, clock, shop, other_shop
):
    every = {"sweep": ShopSchedule(Every(minutes=30))}
    assert shop_jobs.enqueue_due(db, every, clock.now()) == 2
    clock.advance(minutes=29)  # 12:29, still the 12:00 slot
    assert shop_jobs.enqueue_due(db, every, clock.now()) == 0
    clock.advance(minutes=1)  # 12:30, the next slot
    assert shop_jobs.enqueue_due(db, every, clock.now()) == 2
    assert jobs(db) == [
        (shop.domain, "sweep", "2026-11-22T12:00", "queued"),
        (shop.domain, "sweep", "2026-11-22T12:30", "queued"),
        (other_shop.domain, "sweep", "2026-11-22T12:00", "queued"),
        (other_shop.domain, "sweep", "2026-11-22T12:30", "queued"),
    ]


def test_uninstalled_shops_and_shops_a_kind_does_not_concern_get_no_job(
    db, clock, shop, other_shop
):
    set_shop(db, other_shop.id, uninstalled_at=clock.now())
    set_shop(db, shop.id, locale="es")
    kinds = {
        "everyone": ShopSchedule(Every(minutes=5)),
        "french shops": ShopSchedule(Every(minutes=5), Shop.locale == "fr"),
    }
    assert shop_jobs.enqueue_due(db, kinds, clock.now()) == 1
    assert jobs(db) == [(shop.domain, "everyone", "2026-11-22T12:00", "queued")]


def test_daily_work_is_due_from_its_local_time_in_each_shops_own_time_zone(
    db, clock, shop, other_shop
):
    # 12:00 UTC is 02:00 the next day on Kiritimati (UTC+14): before 03:00 there.
    set_shop(db, other_shop.id, timezone="Pacific/Kiritimati")
    nightly = {"nightly": ShopSchedule(DailyAt(time(3, 0)))}
    shop_jobs.enqueue_due(db, nightly, clock.now())
    assert jobs(db) == [(shop.domain, "nightly", "2026-11-22", "queued")]
    clock.advance(hours=1)  # 03:00 on Kiritimati
    shop_jobs.enqueue_due(db, nightly, clock.now())
    assert jobs(db) == [
        (shop.domain, "nightly", "2026-11-22", "queued"),
        (other_shop.domain, "nightly", "2026-11-23", "queued"),
    ]


def test_a_job_whose_worker_died_is_claimed_again_after_its_lease_only(db, clock, shop):
    shop_jobs.enqueue_due(db, {"sweep": ShopSchedule(Every(minutes=5))}, clock.now())
    lease = timedelta(minutes=10)
    taken = shop_jobs.claim(db, clock.now(), lease)
    assert taken is not None and taken.attempts == 1
    assert shop_jobs.claim(db, clock.now(), lease) is None  # held by its lease
    clock.advance(minutes=10, seconds=1)
    again = shop_jobs.claim(db, clock.now(), lease)
    assert (again.id, again.attempts) == (taken.id, 2)
    # The first worker's late result does not overwrite the second's claim.
    shop_jobs.finish(db, taken, clock.now())
    assert jobs(db) == [(shop.domain, "sweep", "2026-11-22T12:00", "running")]
    shop_jobs.finish(db, again, clock.now())
    assert jobs(db) == [(shop.domain, "sweep", "2026-11-22T12:00", "done")]
