"""Operations endpoints: `/healthz` (the process is alive), `/readyz` (ready to work, else 503 with the
reasons) and `/metrics` (Prometheus; a bearer token or an allowed address). Also gives every request an
id (`X-Request-Id`, taken from the proxy or made here) bound to its log lines, and times it."""

from __future__ import annotations

import ipaddress
import secrets
import time
import uuid
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request

from intake import logging_setup

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> tuple[str, int]:
    return "ok", 200


@bp.get("/readyz")
def readyz() -> Any:
    from worker.readiness import run_checks

    checks = run_checks(current_app.config["HOTLINE_SETTINGS"])
    ready = all(c.ok for c in checks)
    body = {
        "ready": ready,
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
        "reasons": [c.detail for c in checks if not c.ok],
    }
    return jsonify(body), 200 if ready else 503


def _allowed() -> bool:
    settings = current_app.config["HOTLINE_SETTINGS"]
    header = request.headers.get("Authorization", "")
    if settings.metrics_token and header.startswith("Bearer "):
        return secrets.compare_digest(header[7:].strip(), settings.metrics_token)
    try:
        peer = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(n, strict=False) for n in settings.metrics_allow)


@bp.get("/metrics")
def metrics() -> Response:
    if not _allowed():
        abort(403, description="metrics need a bearer token (METRICS_TOKEN) or an allowed address")
    from prometheus_client import CONTENT_TYPE_LATEST

    from worker.metrics import exposition

    settings = current_app.config["HOTLINE_SETTINGS"]
    return Response(
        exposition(settings.database_url, settings.redis_url, settings.config),
        content_type=CONTENT_TYPE_LATEST,
    )


def register_ops(app: Flask) -> None:
    from web.audit_view import bp as audit_bp

    app.register_blueprint(bp)
    app.register_blueprint(audit_bp)

    def _request_id() -> None:
        given = request.headers.get("X-Request-Id", "")
        rid = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex[:16]
        g.request_id = rid
        g.request_started = time.perf_counter()
        g.log_token = logging_setup.push(request_id=rid)

    # First of all before-request hooks, so a refused request (CSRF, NUL) has its id too.
    app.before_request_funcs.setdefault(None, []).insert(0, _request_id)

    @app.after_request
    def _observe(response: Any) -> Any:
        response.headers.setdefault("X-Request-Id", g.get("request_id", ""))
        started = g.get("request_started")
        from intake import metrics as m

        if m.ENABLED and started is not None and request.path != "/metrics":
            area = request.blueprints[-1] if request.blueprints else "app"
            m.HTTP_SECONDS.labels(area, str(response.status_code)[0] + "xx").observe(
                time.perf_counter() - started
            )
        return response

    @app.teardown_request
    def _unbind(exc: BaseException | None) -> None:
        token = g.pop("log_token", None)
        if token is not None:
            logging_setup.pop(token)
