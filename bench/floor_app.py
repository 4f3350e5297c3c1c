"""The floor for bench/webhooks.py: the least a webhook endpoint on our stack can do.

Same stack as the service (Flask under the same gunicorn settings, SQLAlchemy on
psycopg 3, the same PostgreSQL server), but the endpoint only checks the HMAC over
the raw body and inserts the raw body into a one-table database. No header checks,
no JSON parsing, no dedupe, no metrics, no connection pre-ping: whatever the
service costs above this is what its own code adds.

Run by bench/webhooks.py as `gunicorn floor_app:application`, with bench/ on
PYTHONPATH and SHOPIFY_API_SECRET, FLOOR_DATABASE_URL (postgresql+psycopg://...) and
FLOOR_POOL_SIZE (default 8) in the environment. The table is created by the benchmark:
`CREATE TABLE floor_inbox (id bigserial PRIMARY KEY, body text NOT NULL)`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from flask import Flask, Response, request
from sqlalchemy import create_engine, text

SECRET = os.environ["SHOPIFY_API_SECRET"].encode()
# A pooled connection per thread, as the service has (app.db), without
# pool_pre_ping: fewer would make busy threads open a connection, and fork a
# PostgreSQL backend, per request.
engine = create_engine(
    os.environ["FLOOR_DATABASE_URL"], pool_size=int(os.environ.get("FLOOR_POOL_SIZE", "8"))
)
INSERT = text("INSERT INTO floor_inbox (body) VALUES (:body)")
# The same bytes the service answers with, so that both sides move the same response.
STORED = b'{"status":"stored"}\n'

application = Flask(__name__)


@application.post("/webhooks/shopify")
def webhook() -> Response:
    body = request.get_data(cache=False)
    expected = base64.b64encode(hmac.new(SECRET, body, hashlib.sha256).digest())
    given = request.headers.get("X-Shopify-Hmac-Sha256", "").strip().encode()
    if not hmac.compare_digest(expected, given):
        return Response(b"", status=401)
    # Autocommit, as the service stores on PostgreSQL: one statement, one round trip.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(INSERT, {"body": body.decode("utf-8")})
    return Response(STORED, status=200, mimetype="application/json")


@application.get("/readyz")
def readyz() -> Response:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return Response(b'{"status":"ok"}\n', mimetype="application/json")
