"""The helpdesk page: which helpdesks are connected, and connecting Gorgias
with exactly what to paste into its HTTP integration (the URL, the secret
header and the body), shown once."""

from __future__ import annotations

from flask import g, render_template
from sqlmodel import Session, select

from app.models import ProviderConnection
from app.providers import connect, webhook_url
from app.web.context import runtime
from app.web.pages.base import bp, check_csrf, signed_in
from integrations import gorgias


def _connections(shop_id: int) -> list[ProviderConnection]:
    with Session(runtime().engine) as db:
        return list(db.exec(
            select(ProviderConnection)
            .where(ProviderConnection.shop_id == shop_id, ProviderConnection.kind == "helpdesk")
            .order_by(ProviderConnection.provider)
        ).all())  # fmt: skip


@bp.get("/helpdesk")
@signed_in
def helpdesk():
    return render_template(
        "app/helpdesk.html", shop=g.shop, connections=_connections(g.shop.id), issued=None
    )


@bp.post("/helpdesk/gorgias")
@signed_in
def connect_gorgias():
    """A new connection (replacing any earlier one: its URL and secret stop
    working), shown once."""
    check_csrf()
    rt = runtime()
    with Session(rt.engine) as db:
        issued = connect(db, rt.secrets, g.shop.id, gorgias.SOURCE, None, rt.clock.now())
        db.commit()
    paste = {
        "url": webhook_url(rt.settings.public_url, gorgias.SOURCE, issued.url_key),
        "header": issued.secret_header,
        "body": gorgias.BODY_TEMPLATE,
    }
    return render_template(
        "app/helpdesk.html", shop=g.shop, connections=_connections(g.shop.id), issued=paste
    )
