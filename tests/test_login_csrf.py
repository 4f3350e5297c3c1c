"""Signing in to the pages takes a form that came from our own login page."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("form_token", [None, ""])
def test_cross_site_login_form_without_our_cookie_is_refused(shop, client, form_token):
    """Login CSRF: a page elsewhere posts the attacker's shop token so that the
    victim's browser is signed in to the attacker's shop. Without our cookie
    there is no token to match, even when the form sends none either."""
    form = {"token": shop.token} | ({} if form_token is None else {"csrf": form_token})

    response = client.post("/app/login", data=form)

    assert response.status_code == 400
    assert "Set-Cookie" not in response.headers
    assert client.get("/app/orders").status_code == 302  # still signed out
