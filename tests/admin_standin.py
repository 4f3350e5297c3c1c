"""A Shopify admin stand-in for the embedded app's browser tests.

Shopify's admin frames an embedded app and App Bridge (loaded in the app's
frame from cdn.shopify.com) asks the admin for session tokens. Here:

- `AdminStandIn` is a WSGI app, served on its own loopback port: the admin
  page (`/store/<name>/apps/careloop?path=/app/...`) frames the app with the
  parameters Shopify adds (`embedded=1`, `shop`, `host`, `locale`, and
  `id_token` unless asked not to), and answers the frame's token requests
  (postMessage) with tokens from `/token`: HS256 JWTs signed with the app's
  client secret, with the claims Shopify documents (`iss` the shop's admin,
  `dest` the shop, `aud` the client id, `sub`, `exp` one minute after `nbf`,
  `iat`, `jti`, `sid`), on the test's clock.
- `APP_BRIDGE` is the stand-in for https://cdn.shopify.com/shopifycloud/app-bridge.js:
  it refuses to start without `<meta name="shopify-api-key">`, as App Bridge
  does, and offers `shopify.idToken()`, which asks the parent admin frame.

The tests route https://admin.shopify.com to this server and the CDN address
to `APP_BRIDGE` (Playwright routing), so that the admin has the origin the
app's `frame-ancestors` allows. Source for the token claims and lifetime:
shopify.dev "About session tokens".
"""

from __future__ import annotations

import base64
import html
import uuid
from string import Template
from urllib.parse import urlencode

import jwt
from werkzeug.wrappers import Request, Response

ADMIN_ORIGIN = "https://admin.shopify.com"
TOKEN_MESSAGE = "careloop-standin:idToken"

APP_BRIDGE = Template("""
(function () {
  var meta = document.querySelector('meta[name="shopify-api-key"]');
  if (!meta || !meta.content) throw new Error("App Bridge: missing <meta name=shopify-api-key>");
  var waiting = {}, next = 0;
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== "${admin}" || !data || data.type !== "${type}") return;
    if (waiting[data.id]) { waiting[data.id](data.token); delete waiting[data.id]; }
  });
  window.shopify = {
    idToken: function () {
      return new Promise(function (resolve) {
        var id = ++next;
        waiting[id] = resolve;
        window.parent.postMessage({type: "${type}", id: id, apiKey: meta.content}, "${admin}");
      });
    }
  };
})();
""").substitute(admin=ADMIN_ORIGIN, type=TOKEN_MESSAGE)

_ADMIN_PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shopify admin (stand-in)</title></head>
<body>
<p>Shopify admin stand-in · ${shop}</p>
<iframe id="app-frame" title="CareLoop" src="${src}"
  style="width:100%;height:1600px;border:0"></iframe>
<script>
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== "${app_origin}" || !data || data.type !== "${type}") return;
    if (data.apiKey !== "${client_id}") return;
    fetch("/token?shop=${shop}").then(function (r) { return r.text(); }).then(function (token) {
      event.source.postMessage({type: "${type}", id: data.id, token: token}, "${app_origin}");
    });
  });
</script>
</body></html>
""")


class AdminStandIn:
    def __init__(self, *, secret: str, client_id: str, clock, app_origin: str, locale: str = "en"):
        self.secret, self.client_id, self.clock = secret, client_id, clock
        self.app_origin, self.locale = app_origin, locale
        self.tokens_issued = 0

    def token(self, shop: str) -> str:
        now = int(self.clock.now().timestamp())
        self.tokens_issued += 1
        claims = {
            "iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": self.client_id,
            "sub": "42", "exp": now + 60, "nbf": now - 5, "iat": now - 5,
            "jti": str(uuid.uuid4()), "sid": "session-1",
        }  # fmt: skip
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def app_url(self, shop: str, path: str, *, with_token: bool = True) -> str:
        name = shop.removesuffix(".myshopify.com")
        host = base64.b64encode(f"admin.shopify.com/store/{name}".encode()).decode().rstrip("=")
        params = {"embedded": "1", "shop": shop, "host": host, "locale": self.locale}
        if with_token:
            params["id_token"] = self.token(shop)
        return f"{self.app_origin}{path}?{urlencode(params)}"

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path == "/token":
            response = Response(self.token(request.args["shop"]), mimetype="text/plain")
        elif request.path.startswith("/store/"):
            name = request.path.split("/")[2]
            shop = f"{name}.myshopify.com"
            src = self.app_url(
                shop, request.args.get("path", "/app/"),
                with_token=request.args.get("token") != "0",
            )  # fmt: skip
            page = _ADMIN_PAGE.substitute({
                "shop": shop, "src": html.escape(src), "app_origin": self.app_origin,
                "type": TOKEN_MESSAGE, "client_id": self.client_id,
            })  # fmt: skip
            response = Response(page, mimetype="text/html")
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)
