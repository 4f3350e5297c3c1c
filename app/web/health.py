"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app import metrics, readiness
from app.web.context import runtime

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """503 only when the database is unreachable (nothing can be accepted);
    otherwise 200, with `degraded` saying what is behind or failing, so a
    load balancer keeps taking webhooks while a monitor sees the trouble."""
    rt = runtime()
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            figures = readiness.report(conn, rt.clock.now())
    except SQLAlchemyError as exc:
        log.warning("readiness check failed: %s", type(exc).__name__)
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    status = "degraded" if figures["degraded"] else "ok"
    return jsonify({"status": status, "database": "ok", **figures})


@bp.get("/metrics")
def prometheus_metrics():
    rt = runtime()
    expected = rt.settings.metrics_token
    if expected:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), expected.encode()
        ):
            return Response(
                "send Authorization: Bearer <CARELOOP_METRICS_TOKEN>\n",
                status=401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": "Bearer"},
            )
    body = metrics.exposition(rt.engine, rt.clock.now())
    return Response(body, mimetype=metrics.CONTENT_TYPE)
