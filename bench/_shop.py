"""A scratch database migrated to our schema with one shop in it: what
bench/delay_sweep.py and bench/support_report.py start from. Imported after
those scripts have put the project on sys.path."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app import migrate
from app.shops import add_shop


def migrated_with_a_shop(url: str, now: datetime) -> tuple[Engine, int]:
    """The engine on `url`, upgraded, and the id of its one shop."""
    migrate.upgrade(url)
    engine = create_engine(url)
    with Session(engine) as session:
        shop, _ = add_shop(session, "bench-store.myshopify.com", now)
        session.commit()
        return engine, shop.id
