"""Domain exceptions and the handlers that render errors as HTML pages or JSON for API clients.

Imports: flask, sqlalchemy.exc.
"""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException


class InboxError(Exception):
    """A domain rule was broken; `code` is a stable machine-readable name."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotFound(InboxError):
    status = 404
    code = "not_found"


class Forbidden(InboxError):
    status = 403
    code = "forbidden"


class Conflict(InboxError):
    """The object changed since the caller read it (optimistic concurrency): re-read, then retry."""

    status = 409
    code = "conflict"


# Called by machines (API clients, the platforms' webhooks) and authenticated by a bearer token
# or a platform's signature, never by the session cookie: errors as JSON, and no cookie session,
# session user or rate-limit lookup (see views).
MACHINE_PATHS = ("/api/", "/webhooks/")


def is_machine_request() -> bool:
    return request.path.startswith(MACHINE_PATHS)


def wants_json() -> bool:
    if is_machine_request() or request.path == "/healthz":
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > (request.accept_mimetypes["text/html"])
    )


def json_error(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def _render(status: int, code: str, message: str):
    if wants_json():
        return json_error(status, code, message)
    template = f"errors/{status}.html" if status in (403, 404, 500) else "errors/generic.html"
    return render_template(template, status=status, message=message), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(InboxError)
    def handle_domain_error(error: InboxError):
        return _render(error.status, error.code, error.message)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        status = error.code or 500
        return _render(status, _CODES.get(status, "error"), error.description or "")

    @app.errorhandler(OperationalError)
    def handle_database_down(error: OperationalError):
        # The database is unreachable: 503 tells clients (and platforms) to retry later.
        app.logger.error(
            "database unavailable on %s %s: %s",
            request.method,
            request.path,
            type(error.orig).__name__,
        )
        return _render(503, "unavailable", "The service is temporarily unavailable.")

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        # Log the traceback, show nothing internal to the client.
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _render(500, "internal_error", "Something went wrong on our side.")
