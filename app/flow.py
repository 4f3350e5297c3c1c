"""Shopify Flow triggers: CareLoop's delay facts as events a merchant can
build automations on ("Order delay detected", "Order delivered late",
"Tracking problem detected"; declared in extensions/*/shopify.extension.toml).

Reliable without holding up the rules: detecting a delay only marks its
episode as owed to Flow and queues a one-off shop job (`flow.triggers`);
the job fires what is owed through the Admin API and stamps each episode
when Shopify accepted it, one commit per trigger. A failure raises, and the
shop job is retried with backoff, continuing where it stopped; a periodic
run picks up anything a one-off missed. Shops without an Admin API token
(added by hand, no Shopify install) have no Flow to tell.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session, select

from app import shop_jobs
from app.delays import CUSTOMER_CAUSES, MERCHANT_CAUSES
from app.models import DelayEpisode, Order, Shipment, Shop
from app.runtime import Runtime
from app.shop_tokens import with_admin
from integrations.shopify_admin import flow_trigger_receive

log = logging.getLogger(__name__)

JOB = "flow.triggers"
DELAY_DETECTED = "order-delay-detected"
DELIVERED_LATE = "order-delivered-late"
TRACKING_PROBLEM = "tracking-problem-detected"


def queue(session: Session, shop_id: int, now: datetime) -> None:
    """Something is owed to Flow: a job to fire it (the caller commits)."""
    shop = session.get(Shop, shop_id)
    if shop is None or shop.access_token_encrypted is None:
        return
    shop_jobs.enqueue_once(session, shop_id, JOB, now.strftime("%Y-%m-%dT%H:%M:%S.%f"), now)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def owed(session: Session, shop_id: int) -> list[tuple[str, dict, list[DelayEpisode], str]]:
    """What the shop's Flow has not been told: (handle, payload, the
    episodes it covers, which stamp to set)."""
    found = []
    detected = session.exec(
        select(DelayEpisode, Order.shopify_id)
        .join(Order, Order.id == DelayEpisode.order_id)
        .where(DelayEpisode.shop_id == shop_id, DelayEpisode.flow_detected_at.is_(None))
        .order_by(DelayEpisode.id)
    ).all()
    for episode, order_id in detected:
        if episode.cause in MERCHANT_CAUSES:
            shipment = session.get(Shipment, episode.shipment_id) if episode.shipment_id else None
            payload = {
                "order_id": order_id,
                "Carrier": (shipment.carrier if shipment else None) or "",
                "Tracking number": (shipment.tracking_number if shipment else None) or "",
                "Shipped at": _iso(shipment.shipped_at if shipment else None),
            }
            found.append((TRACKING_PROBLEM, payload, [episode], "flow_detected_at"))
        elif episode.cause in CUSTOMER_CAUSES:
            payload = {
                "order_id": order_id, "Delay cause": episode.cause,
                "Promised at": _iso(episode.promised_at), "Expected at": _iso(episode.expected_at),
                # Told, or the message on its way (it leaves within minutes).
                "Customer told": episode.told_channel is not None,
            }  # fmt: skip
            found.append((DELAY_DETECTED, payload, [episode], "flow_detected_at"))
    late = session.exec(
        select(DelayEpisode, Order.shopify_id, Order.state_changed_at)
        .join(Order, Order.id == DelayEpisode.order_id)
        .where(
            DelayEpisode.shop_id == shop_id,
            Order.state == "delivered",
            DelayEpisode.flow_delivered_late_at.is_(None),
            DelayEpisode.cause.in_(CUSTOMER_CAUSES),
        )
        .order_by(DelayEpisode.order_id, DelayEpisode.id)
    ).all()
    by_order: dict[int, list[DelayEpisode]] = {}
    delivered_at: dict[int, datetime] = {}
    for episode, order_id, state_changed_at in late:
        by_order.setdefault(order_id, []).append(episode)
        delivered_at[order_id] = state_changed_at
    for order_id, episodes in by_order.items():
        promised = [e.promised_at for e in episodes if e.promised_at]
        payload = {
            "order_id": order_id,
            "Delay causes": ",".join(e.cause for e in episodes),
            "Promised at": _iso(min(promised) if promised else None),
            "Delivered at": _iso(delivered_at[order_id]),
        }
        found.append((DELIVERED_LATE, payload, episodes, "flow_delivered_late_at"))
    return found


def fire_owed(rt: Runtime, shop_id: int) -> None:
    """The `flow.triggers` job: fire what the shop's Flow is owed."""
    with Session(rt.engine) as session:
        shop = session.get(Shop, shop_id)
        if shop is None or shop.access_token_encrypted is None or shop.uninstalled_at:
            return
        for handle, payload, episodes, stamp in owed(session, shop_id):
            with_admin(
                session, rt, shop, lambda c, h=handle, p=payload: flow_trigger_receive(c, h, p)
            )
            now = rt.clock.now()
            for episode in episodes:
                setattr(episode, stamp, now)
                session.add(episode)
            session.commit()  # fired: never again, whatever fails next
            log.info("shop %s: Flow trigger %s fired for order %s", shop_id, handle,
                     payload["order_id"])  # fmt: skip
