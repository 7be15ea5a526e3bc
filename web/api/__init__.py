"""The JSON API under /api/v1/: bearer tokens per client, JSON errors, an OpenAPI document."""

from __future__ import annotations

from flask import Flask

from web.api.common import bp, register_errors


def register_api(app: Flask) -> None:
    """Attach the API; a route without a documented operation stops the app from starting."""
    from web.api import incidents, openapi, resources, tickets  # noqa: F401  (routes attach to bp)

    app.register_blueprint(bp)
    register_errors(app)
    missing = openapi.undocumented_routes(app)
    if missing:
        raise RuntimeError(f"API routes without an @operation: {', '.join(missing)}")


__all__ = ["bp", "register_api"]
