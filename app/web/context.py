"""The runtime of the app serving the current request."""

from __future__ import annotations

from flask import current_app

from app.runtime import Runtime


def runtime() -> Runtime:
    """The runtime `create_app` was given (views call this, never build one)."""
    return current_app.extensions["careloop"]
