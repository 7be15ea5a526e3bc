"""The operator console, the JSON API and the voice webhooks, served by one Flask application."""

from web.app import create_app

__all__ = ["create_app"]
