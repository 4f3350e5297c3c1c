"""One registry of outside providers by kind, one interface, one connection
model and one route shape (`app.providers`)."""

from __future__ import annotations

import inspect

from app.providers import BY_KIND, KINDS, PROVIDERS, WebhookProvider
from support import AFTERSHIP_SECRET

INTERFACE = [
    name
    for name, member in inspect.getmembers(WebhookProvider)
    if inspect.isfunction(member) and not name.startswith("_")
]


def test_every_provider_offers_the_whole_interface_under_one_kind():
    assert set(INTERFACE) == {"check_secret", "authenticate", "describe", "parse", "references"}
    for name, provider in PROVIDERS.items():
        assert name == provider.SOURCE
        assert provider.KIND in KINDS, name
        assert isinstance(provider.SECRET_REQUIRED, bool), name
        for function in INTERFACE:
            assert callable(getattr(provider, function, None)), f"{name}.{function}"
    assert sorted(PROVIDERS) == sorted(n for kind in KINDS for n in BY_KIND[kind])


def test_a_provider_is_reached_only_under_its_own_kind(client, shop):
    answer = client.put(
        "/api/v1/fulfillment-providers/aftership",
        json={"secret": AFTERSHIP_SECRET},
        headers=shop.auth,
    )
    assert answer.status_code == 201
    url = answer.json["webhook_url"]
    assert "/webhooks/fulfillment/aftership?key=" in url
    path = url[url.index("/webhooks/") :]

    elsewhere = client.post(path.replace("/fulfillment/", "/helpdesk/"), json={})
    assert (elsewhere.status_code, elsewhere.json["error"]["code"]) == (404, "unknown_provider")
    listed = client.get("/api/v1/helpdesk-providers", headers=shop.auth)
    assert (listed.status_code, listed.json) == (200, {"providers": []})
    assert (
        client.put(
            "/api/v1/helpdesk-providers/aftership",
            json={"secret": AFTERSHIP_SECRET},
            headers=shop.auth,
        ).status_code
        == 404
    )
    [connection] = client.get("/api/v1/fulfillment-providers", headers=shop.auth).json["providers"]
    assert (connection["kind"], connection["provider"]) == ("fulfillment", "aftership")
