"""Errors for every HTTP failure: a clear message, never a stack trace; JSON
for machines, a page for people on `/app`."""

from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound


def error_response(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, MethodNotAllowed) and not _served_by_any(exc.valid_methods or ()):
            # An id out of range fails the converter only on the rules
            # Werkzeug converts (the request's method); the other methods'
            # rules then look like a match and the answer would be 405.
            exc = NotFound(f"nothing at {request.path}")
        status = exc.code or 500
        message = exc.description or exc.name
        if request.path.startswith(("/app/", "/u/", "/auth/")):
            return render_template("app/error.html", status=status, message=message), status
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(status, code, message)


def _served_by_any(methods) -> bool:
    """Whether some method really has a route for this URL."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in methods:
        try:
            adapter.match(method=method)
        except HTTPException:
            continue
        return True
    return False
