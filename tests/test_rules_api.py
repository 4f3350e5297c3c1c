"""/api/v1/rules: a shop's rules through the API contract, refused with the
field and the reason when they cannot work, never across shops; the preview
sends nothing; a rule switched off withdraws its queued messages."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from app import delay_checks, rule_book
from app.models import DelayEpisode, Notification, Order, Rule
from support import load_fixture


def rules(client, shop) -> list[dict]:
    response = client.get("/api/v1/rules", headers=shop.auth)
    assert response.status_code == 200
    return response.get_json()["rules"]


def by_trigger(client, shop, trigger: str) -> dict:
    return next(r for r in rules(client, shop) if r["trigger"] == trigger)


def test_a_new_shop_has_the_default_rules(client, shop):
    listed = {r["trigger"]: r for r in rules(client, shop)}
    assert set(listed) >= {
        "shipped", "out_for_delivery", "ready_for_pickup", "delivered", "delay_not_shipped",
        "delay_estimate", "delay_stalled", "delay_exception", "delay_delivered_followup",
    }  # fmt: skip
    assert listed["delivered"]["enabled"] is False
    assert listed["delay_stalled"]["escalation_hours"] == 72
    assert listed["out_for_delivery"]["channels"] == ["sms", "email"]


def test_a_rule_is_created_read_changed_and_deleted(client, shop):
    created = client.post("/api/v1/rules", headers=shop.auth, json={
        "name": "Big orders abroad", "trigger": "delay_stalled", "channels": ["sms"],
        "min_order_value": "200.00", "countries": ["FR", "DE"], "tags": ["vip"],
        "shipping_methods": ["Express"], "escalation_hours": 24, "wait_minutes": 30,
    })  # fmt: skip
    assert created.status_code == 201, created.get_json()
    rule = created.get_json()
    assert (rule["template_kind"], rule["countries"], rule["min_order_value"]) == (
        "delay", ["FR", "DE"], "200.00",
    )  # fmt: skip
    url = f"/api/v1/rules/{rule['id']}"
    assert client.get(url, headers=shop.auth).get_json() == rule

    changed = client.patch(url, headers=shop.auth, json={"enabled": False, "tags": []})
    assert changed.status_code == 200
    assert (changed.get_json()["enabled"], changed.get_json()["tags"]) == (False, [])
    assert changed.get_json()["countries"] == ["FR", "DE"]  # not given: unchanged

    assert client.delete(url, headers=shop.auth).status_code == 204
    assert client.get(url, headers=shop.auth).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"escalation_hours": 24}, "escalation_hours"),  # a shipping stage does not escalate
    ({"template_kind": "nope"}, "template_kind"),
    ({"template_kind": "survey"}, "template_kind"),  # a kind made for another trigger
    ({"name": "a\ud800"}, "name"),  # a lone surrogate: no text can hold it
    ({"channels": ["email", "email"]}, "channels"),
    ({"name": " \t "}, "name"),
    # A birthday is about no order: a condition on one could never hold.
    ({"trigger": "birthday", "category": "marketing", "tags": ["vip"]}, "tags"),
    ({"trigger": "birthday", "category": "marketing", "min_order_value": "10"}, "min_order_value"),
    ({"name": "\u200b"}, "name"),  # nothing to read
    ({"name": "a\nb\u001b[31m"}, "name"),  # control characters
])  # fmt: skip
def test_a_rule_that_cannot_work_is_refused_with_the_field_and_the_reason(
    client, shop, body, field
):
    response = client.post("/api/v1/rules", headers=shop.auth,
                           json={"name": "x", "trigger": "shipped"} | body)  # fmt: skip
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["problems"][0]["field"] == field
    assert len(rules(client, shop)) == len(rule_book.DEFAULTS)  # nothing added


@pytest.mark.parametrize("body", [
    {"name": "x", "trigger": "when_it_rains"},
    {"name": "x", "trigger": "shipped", "countries": ["Spain"]},
    {"name": "x", "trigger": "shipped", "tags": ["a,b"]},
    {"name": "", "trigger": "shipped"},
    {"name": "x", "trigger": "shipped", "wait_minutes": -1},
    {"name": "x", "trigger": "shipped", "tags": [" "]},  # matches nothing, counted as a condition
    {"name": "x", "trigger": "shipped", "shipping_methods": ["\t"]},
    {"name": "x", "trigger": "shipped", "countries": ["XX"]},  # shaped like a code, no country
    {"name": "x", "trigger": "shipped", "countries": ["ZZ"]},  # CLDR's "unknown region"
    {"name": "x", "trigger": "shipped", "countries": ["IC"]},  # addresses say ES
    {"name": "x", "trigger": "shipped", "enabled": "false"},  # true or false, not text
    {"name": "x", "trigger": "shipped", "quiet_hours": 1},
])  # fmt: skip
def test_malformed_rules_are_bad_requests_naming_the_field(client, shop, body):
    response = client.post("/api/v1/rules", headers=shop.auth, json=body)
    assert response.status_code == 400
    assert ":" in response.get_json()["error"]["message"]


def test_a_rule_stored_before_a_bound_existed_is_listed_and_names_the_field_to_mend(
    client, shop, db
):
    rule = by_trigger(client, shop, "shipped")
    with Session(db) as session:  # what the page could store before the bound
        row = session.get(Rule, rule["id"])
        row.tags = "y" * 61
        session.add(row)
        session.commit()
    assert by_trigger(client, shop, "shipped")["tags"] == ["y" * 61]
    url = f"/api/v1/rules/{rule['id']}"
    response = client.patch(url, headers=shop.auth, json={"wait_minutes": 5})
    assert response.status_code == 422
    assert response.get_json()["error"]["problems"][0]["field"] == "tags"
    assert client.patch(url, headers=shop.auth, json={"tags": ["vip"]}).status_code == 200


def test_a_patch_that_changes_nothing_leaves_the_rule_as_it_was(client, shop, clock):
    rule = by_trigger(client, shop, "shipped")
    url = f"/api/v1/rules/{rule['id']}"
    clock.advance(hours=1)
    for body in ({}, {"enabled": rule["enabled"], "channels": rule["channels"]}):
        response = client.patch(url, headers=shop.auth, json=body)
        assert response.status_code == 200
        assert response.get_json()["updated_at"] == rule["updated_at"]
    changed = client.patch(url, headers=shop.auth, json={"wait_minutes": 5}).get_json()
    assert changed["updated_at"] != rule["updated_at"]


def test_a_shop_never_sees_or_changes_another_shops_rule(client, shop, other_shop):
    theirs = by_trigger(client, other_shop, "shipped")
    url = f"/api/v1/rules/{theirs['id']}"
    assert client.get(url, headers=shop.auth).status_code == 404
    assert client.patch(url, headers=shop.auth, json={"enabled": False}).status_code == 404
    assert client.delete(url, headers=shop.auth).status_code == 404
    assert client.get(url + "/preview", headers=shop.auth).status_code == 404
    assert by_trigger(client, other_shop, "shipped")["enabled"] is True


def test_the_preview_lists_who_would_be_told_and_sends_nothing(client, shop, deliver, work,
                                                               clock, db):  # fmt: skip
    deliver("orders/paid", "orders_paid")
    work()
    clock.advance(days=6)  # past the promise and its grace; the sweep has not run
    rule = by_trigger(client, shop, "delay_not_shipped")
    preview = client.get(f"/api/v1/rules/{rule['id']}/preview", headers=shop.auth).get_json()
    assert [(w["order_id"], w["about"], w["channel"], w["recipient"], w["not_sent_because"])
            for w in preview["would_tell"]] == [
        (5001001, "not_shipped", "email", "ana@example.com", None)
    ]  # fmt: skip
    with Session(db) as session:
        assert session.exec(select(Notification).where(Notification.kind == "delay")).all() == []


def test_switching_a_rule_off_withdraws_its_queued_messages(client, shop, deliver, work, db):
    rule = by_trigger(client, shop, "shipped")
    client.patch(f"/api/v1/rules/{rule['id']}", headers=shop.auth, json={"wait_minutes": 60})
    deliver("orders/paid", "orders_paid")
    deliver("fulfillments/create", "fulfillments_create")
    work()
    with Session(db) as session:
        [queued] = session.exec(select(Notification)).all()
    assert (queued.status, queued.rule_id) == ("queued", rule["id"])
    assert queued.next_attempt_at > queued.created_at  # the rule's wait

    client.patch(f"/api/v1/rules/{rule['id']}", headers=shop.auth, json={"enabled": False})
    with Session(db) as session:
        [withdrawn] = session.exec(select(Notification)).all()
    assert withdrawn.status == "suppressed"
    assert withdrawn.status_detail == "rule 'Shipped' switched off"


def test_a_rule_that_lets_sms_go_at_night_marks_its_messages(client, shop, deliver, work, db):
    rule = by_trigger(client, shop, "shipped")
    client.patch(f"/api/v1/rules/{rule['id']}", headers=shop.auth,
                 json={"quiet_hours": False, "channels": ["sms"]})  # fmt: skip
    order = load_fixture("shopify", "orders_paid")
    deliver("orders/paid", order)
    deliver("fulfillments/create", "fulfillments_create")
    work()
    with Session(db) as session:
        [queued] = session.exec(select(Notification)).all()
    assert (queued.channel, queued.quiet_hours) == ("sms", False)


def test_delay_settings_are_read_changed_and_validated(client, shop):
    url = "/api/v1/settings/delays"
    assert client.get(url, headers=shop.auth).get_json() == {
        "country": "US", "processing_days": 2, "transit_days": 5, "transit_days_by_country": {},
        "stalled_days_home": 3, "stalled_days_abroad": 5, "not_shipped_grace_hours": 72,
        "tracking_problem_hours": 72, "holidays": [],
    }  # fmt: skip
    changed = client.patch(url, headers=shop.auth, json={
        "country": "ES", "transit_days_by_country": {"US": 8},
        "holidays": ["2026-12-25", "2026-12-24", "2026-12-25"],
    })  # fmt: skip
    assert changed.status_code == 200
    assert changed.get_json()["holidays"] == ["2026-12-24", "2026-12-25"]
    assert changed.get_json()["transit_days_by_country"] == {"US": 8}
    for bad in ({"not_shipped_grace_hours": 12}, {"country": "Spain"},
                {"holidays": ["25/12/2026"]}, {"stalled_days_home": None}):  # fmt: skip
        response = client.patch(url, headers=shop.auth, json=bad)
        assert response.status_code == 400, bad
        assert next(iter(bad)) in response.get_json()["error"]["message"]
    assert client.get(url, headers=shop.auth).get_json()["country"] == "ES"


def test_changed_delay_settings_apply_to_open_orders_at_the_next_sweep(
    client, shop, deliver, work, db, clock
):
    deliver("orders/paid", "orders_paid")
    work()
    client.patch("/api/v1/settings/delays", headers=shop.auth, json={"processing_days": 5})
    with Session(db) as session:
        order = session.exec(select(Order)).one()
    assert order.next_check_at == clock.now()  # checked again, with the new settings


def test_the_preview_says_an_order_too_old_to_tell_would_not_be_told(
    client, shop, deliver, work, clock, db
):
    deliver("orders/paid", "orders_paid")
    work()
    clock.advance(days=40)
    rule = by_trigger(client, shop, "delay_not_shipped")
    preview = client.get(f"/api/v1/rules/{rule['id']}/preview", headers=shop.auth).get_json()
    [entry] = preview["would_tell"]
    assert entry["not_sent_because"] == "stale: the order is over 30 days old"


def test_a_delay_rule_switched_off_leaves_its_withdrawn_delays_untold(
    client, shop, deliver, work, db, rt, clock
):
    deliver("orders/paid", "orders_paid")
    work()
    clock.advance(days=6)  # past the promise and its grace
    delay_checks.sweep(db, shop.id, clock.now())
    with Session(db) as session:
        [episode] = session.exec(select(DelayEpisode)).all()
    assert (episode.told_at, episode.told_channel) == (None, "email")  # on its way

    rule = by_trigger(client, shop, "delay_not_shipped")
    client.patch(f"/api/v1/rules/{rule['id']}", headers=shop.auth, json={"enabled": False})
    with Session(db) as session:
        [episode] = session.exec(select(DelayEpisode)).all()
        [withdrawn] = session.exec(select(Notification)).all()
    assert withdrawn.status == "suppressed"
    assert (episode.told_at, episode.told_channel) == (None, None)


def test_a_rule_cannot_be_changed_to_another_triggers_templates(client, shop):
    rule = by_trigger(client, shop, "shipped")
    url = f"/api/v1/rules/{rule['id']}"
    response = client.patch(url, headers=shop.auth, json={"template_kind": "delay"})
    assert response.status_code == 422
    assert response.get_json()["error"]["problems"][0]["field"] == "template_kind"
    assert client.get(url, headers=shop.auth).get_json() == rule


def test_json_nested_past_the_parsers_limit_is_a_bad_request(client, shop):
    deep = "[" * 100_000 + "]" * 100_000
    headers = shop.auth | {"Content-Type": "application/json"}
    response = client.post("/api/v1/rules", headers=headers, data=deep)
    assert response.status_code == 400
    assert len(rules(client, shop)) == len(rule_book.DEFAULTS)
