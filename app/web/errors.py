"""Errors for every HTTP failure: a clear message, never a stack trace; JSON
for machines, a page for people on `/app`."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException


def error_response(status: int, code: str, message: str, problems: list[dict] | None = None):
    """The API's error body; `problems` lists each field refused and why."""
    body = {"code": code, "message": message} | ({"problems": problems} if problems else {})
    response = jsonify({"error": body})
    response.status_code = status
    return response


def refused(code: str, field: str, reason: str):
    """422 for a value that is well formed but cannot work, naming the field."""
    return error_response(422, code, f"{field}: {reason}", [{"field": field, "message": reason}])


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if request.path.startswith(("/app/", "/u/", "/auth/")):
            return render_template("app/error.html", status=status, message=message), status
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(status, code, message)
