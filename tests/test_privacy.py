"""Privacy by declaration: every table says which columns hold a customer's
personal data and how each is erased (`__privacy__` in app/models.py). These
tests are generated from the declarations, so a new personal column is
checked as soon as it is declared, and a table without a declaration fails."""

from __future__ import annotations

from datetime import UTC, date, datetime
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlmodel import Session, SQLModel

from app.models import (
    Customer,
    Erasure,
    InboxMessage,
    Privacy,
    RetentionSnapshot,
    Shop,
    Survey,
    Ticket,
    TicketMessage,
)
from app.retention_snapshots import SnapshotRequest, take_snapshot
from notifications.unsubscribe import unsubscribe_url
from support import load_fixture

ANA = 7001001


def declared_models() -> dict[str, type[SQLModel]]:
    """Every table's model, by table name."""
    return {model.__tablename__: model for model in SQLModel.__subclasses__()}


def personal_columns() -> list[tuple[type[SQLModel], str, Erasure]]:
    return [
        (model, column, erasure)
        for model in declared_models().values()
        for column, erasure in model.__privacy__.customer.items()
    ]


def test_every_table_declares_its_personal_data():
    models = declared_models()
    assert set(models) == set(SQLModel.metadata.tables)
    for name, model in models.items():
        privacy = model.__dict__.get("__privacy__")
        assert isinstance(privacy, Privacy), f"{name} declares no __privacy__"
        unknown = set(privacy.customer) - set(model.__table__.columns.keys())
        assert not unknown, f"{name} declares columns it does not have: {unknown}"
        tenant_data = privacy.shop_rows == "delete"
        assert name == "shops" or not tenant_data or "shop_id" in model.__table__.columns, name


BIRTH_DATE = {
    "metafields": [
        {"id": 7101001, "namespace": "facts", "key": "birth_date", "value": "1990-05-17",
         "type": "date", "owner_id": ANA, "owner_resource": "customer"}
    ]
}  # fmt: skip


def _story(client, deliver, work, db, settings, shop, domain=None) -> None:
    """A customer with something in every table that holds personal data."""
    options = {"domain": domain} if domain else {}
    phone = {"phone": "+34612345678"}
    for topic, payload in (
        ("customers/create", "customers_create"),
        ("orders/create", load_fixture("shopify", "orders_create") | phone),
        ("orders/paid", load_fixture("shopify", "orders_paid") | phone),
        ("fulfillments/create", "fulfillments_create"),
        # The birth date, as a subscription naming `facts` delivers it.
        ("customers/update", load_fixture("shopify", "customers_update") | phone | BIRTH_DATE),
    ):
        assert deliver(topic, payload, **options).status_code == 200
    assert deliver("customers/data_request", "customers_data_request", **options).status_code == 200
    _gorgias_ticket(client, shop)
    work()
    # The email's unsubscribe link (ChannelOptOut holds the address).
    link = urlsplit(unsubscribe_url(settings, shop.id, "email", "ana@example.com"))
    assert client.post(link.path).status_code == 200
    with Session(db) as session:
        story_shop = shop if domain is None else _shop(session, domain)
        _ticket_with_a_survey(session, story_shop)
        story_shop_id = story_shop.id
        session.commit()
    # A retention snapshot as of three months after her order: Ana is at risk.
    take_snapshot(db, story_shop_id, datetime(2027, 3, 1, tzinfo=UTC),
                  SnapshotRequest(as_of=date(2027, 2, 20)))  # fmt: skip


def _gorgias_ticket(client, shop) -> None:
    """Her ticket in Gorgias: its raw body names her only by email."""
    issued = client.put("/api/v1/helpdesk-providers/gorgias", json={}, headers=shop.auth).json
    name, _, value = issued["secret_header"].partition(": ")
    url = urlsplit(issued["webhook_url"])
    response = client.post(
        f"{url.path}?{url.query}",
        json=load_fixture("gorgias", "ticket_created"),
        headers={name: value},
    )
    assert response.status_code == 200


def _shop(session, domain: str) -> Shop:
    return session.exec(select(Shop).where(Shop.domain == domain)).scalar_one()


def _ticket_with_a_survey(session, shop) -> None:
    """A closed ticket from the customer, rated with a comment."""
    customer = session.exec(
        select(Customer).where(Customer.shop_id == shop.id, Customer.shopify_id == ANA)
    ).scalar_one()
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    ticket = Ticket(
        shop_id=shop.id, source="api", external_id="T-1", channel="email", status="closed",
        customer_id=customer.id, requester_email="ana@example.com", requester_phone="+34612345678",
        subject="Where is my order #1001?", opened_at=at, closed_at=at, source_updated_at=at,
        created_at=at,
    )  # fmt: skip
    session.add(ticket)
    session.flush()
    session.add(TicketMessage(
        shop_id=shop.id, ticket_id=ticket.id, external_id="M-1", author_kind="customer",
        sent_at=at, body="My parcel has not arrived",
    ))  # fmt: skip
    session.add(Survey(
        shop_id=shop.id, ticket_id=ticket.id, customer_id=customer.id, rating=2,
        comment="Took a week", sent_at=at, answered_at=at, created_at=at,
    ))  # fmt: skip


def _rows(db, model) -> list[dict]:
    with Session(db) as session:
        return [dict(row._mapping) for row in session.exec(select(model.__table__)).all()]


def test_customer_redaction_erases_every_declared_column(client, deliver, work, db, settings, shop):
    _story(client, deliver, work, db, settings, shop)
    for model, column, _ in personal_columns():
        values = [row[column] for row in _rows(db, model)]
        assert any(v not in (None, "", "{}") for v in values), (
            f"the story leaves {model.__tablename__}.{column} empty: it would test nothing"
        )

    assert deliver("customers/redact", "customers_redact").status_code == 200
    work()

    # Retention snapshots keep aggregates, with nothing of hers in them.
    for report in (row["report"] for row in _rows(db, RetentionSnapshot)):
        assert "ana" not in report.lower() and "7001001" not in report
    for model, column, erasure in personal_columns():
        values = [row[column] for row in _rows(db, model)]
        where = f"{model.__tablename__}.{column}"
        if erasure is Erasure.DELETE_ROW:
            assert values == [], where
        elif erasure is Erasure.NULL:
            assert values and all(v is None for v in values), (where, values)
        else:  # EMPTY
            assert values and all(v in ("", "{}") for v in values), (where, values)


def test_shop_redaction_deletes_every_row_of_that_shop_only(
    client, deliver, work, db, settings, shop, other_shop
):
    _story(client, deliver, work, db, settings, shop)
    _story(client, deliver, work, db, settings, other_shop, domain=other_shop.domain)
    deliver("app/uninstalled", "app_uninstalled")
    work()
    assert deliver("shop/redact", "shop_redact").status_code == 200
    work()

    kept = {}
    with Session(db) as session:
        assert session.get(Shop, shop.id) is None
        for name, model in declared_models().items():
            if name == "shops" or model.__privacy__.shop_rows == "transient":
                continue
            table = model.__table__
            count = select(func.count()).select_from(table)
            assert session.exec(count.where(table.c.shop_id == shop.id)).one()[0] == 0, name
            kept[name] = session.exec(count.where(table.c.shop_id == other_shop.id)).one()[0]
    assert kept["customers"] == kept["orders"] == kept["notifications"] == 1


def test_sms_consent_is_redacted_under_the_customer_id_it_was_applied_to(deliver, work, db, shop):
    # SMS consent names the customer by `id` (that is what is applied); a
    # `customer_id` in another form used to make the reference unreadable, the
    # error was swallowed, and the row kept the phone number where
    # customers/redact could not find it.
    consent = load_fixture("shopify", "customers_marketing_consent_update") | {
        "customer_id": "gid://shopify/Customer/7001001"
    }
    deliver("customers/create", "customers_create")
    deliver("customers_marketing_consent/update", consent)
    work()
    deliver("customers/redact", "customers_redact")
    work()

    with Session(db) as session:
        bodies = session.exec(select(InboxMessage.body)).scalars().all()
        refs = session.exec(select(InboxMessage.topic, InboxMessage.customer_ref)).all()
    assert not any("+34612345678" in body for body in bodies), refs
    assert ("customers_marketing_consent/update", ANA) in [tuple(r) for r in refs]
