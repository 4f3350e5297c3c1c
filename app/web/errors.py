"""JSON errors for every HTTP failure: a clear message, never a stack trace."""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


def error_response(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)
