"""Errors for every HTTP failure: a clear message, never a stack trace; JSON
for machines, a page for people on `/app`."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException


def error_response(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if request.path.startswith(("/app/", "/u/", "/auth/")):
            return render_template("app/error.html", status=status, message=message), status
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(status, code, message)
