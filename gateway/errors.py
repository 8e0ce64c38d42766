"""Errors the domain services raise; the web layer maps each to an HTTP status and JSON body."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class Invalid(ServiceError):
    status = 400
    code = "invalid_request"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Gone(ServiceError):
    status = 410
    code = "gone"


class TooLarge(ServiceError):
    status = 413
    code = "body_too_large"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Timeout(ServiceError):
    status = 408
    code = "request_timeout"
