"""Open311 GeoReport v2 under /open311/v2/: a property portal files and follows requests."""

from __future__ import annotations

from flask import Flask

from web.api.common import ERROR_FORMATS


def register_open311(app: Flask) -> None:
    from web.open311.views import bp, http_error

    app.register_blueprint(bp)
    app.extensions.setdefault(ERROR_FORMATS, {})["/open311/"] = http_error
