"""Secrets that travel in URLs never reach the logs: ShipBob's legacy URL
`key`, Shopify's `id_token` and OAuth `code`, and the tokens of unsubscribe,
survey and sign-in links, checked
in what real servers print: gunicorn (`careloop serve`) and the embedded
server (`careloop run`)."""

from __future__ import annotations

import pytest
import requests
from processes import child_env
from test_e2e import WITHOUT_DOTENV, start_server

from support import ON_POSTGRESQL

pytestmark = pytest.mark.e2e

SECRETS = {
    "key": "shipbob-url-key-s3cret",
    "id_token": "eyJhbGciOiJIUzI1NiJ9.id-token-s3cret.sig",
    "code": "oauth-code-s3cret",
    "unsubscribe": "unsubscribe-token-s3cret",
    "referer": "referer-token-s3cret",
    "survey": "survey-token-s3cret",
    "sign_in_link": "sign-in-link-s3cret",
}


def visit_with_secrets(base_url: str) -> None:
    """Requests that carry each secret in their URL (all refused: that does
    not keep them out of the request log)."""
    with requests.Session() as http:
        http.post(f"{base_url}/webhooks/fulfillment/shipbob?key={SECRETS['key']}", timeout=10)
        http.get(f"{base_url}/app/orders?id_token={SECRETS['id_token']}", timeout=10)
        http.get(
            f"{base_url}/auth/callback?shop=x.myshopify.com&code={SECRETS['code']}", timeout=10
        )
        http.get(
            f"{base_url}/u/{SECRETS['unsubscribe']}",
            headers={"Referer": f"{base_url}/u/{SECRETS['referer']}"},
            timeout=10,
        )
        http.get(f"{base_url}/s/{SECRETS['survey']}", timeout=10)
        http.get(f"{base_url}/app/sign-in/{SECRETS['sign_in_link']}", timeout=10)


def assert_logged_without_secrets(output: str) -> None:
    leaked = sorted(name for name, value in SECRETS.items() if value in output)
    assert not leaked, f"the log shows {', '.join(leaked)}:\n{output}"
    # The requests were logged, with the secrets blanked out.
    for line in ("key=[redacted]", "id_token=[redacted]", "code=[redacted]", "/u/[redacted]",
                 "/s/[redacted]", "/app/sign-in/[redacted]"):  # fmt: skip
        assert line in output, output


@ON_POSTGRESQL
def test_gunicorn_logs_carry_no_url_secrets(db, env, processes):
    production = child_env(
        env | {"CARELOOP_ENV": "production", "CARELOOP_WITHOUT_PROVIDER": "hold"}
    )
    base_url = start_server(processes, "serve", production, "--workers", "1")

    visit_with_secrets(base_url)

    [server] = processes.started
    server.stop()
    assert_logged_without_secrets(server.output())


@WITHOUT_DOTENV
def test_embedded_server_logs_carry_no_url_secrets(tmp_path, processes):
    newcomer = child_env(
        {"CARELOOP_ENV": "development", "CARELOOP_INSTANCE_DIR": str(tmp_path / "instance")}
    )
    base_url = start_server(processes, "run", newcomer)

    visit_with_secrets(base_url)

    [server] = processes.started
    server.stop()
    assert_logged_without_secrets(server.output())
