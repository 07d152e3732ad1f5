"""The error hierarchy every part of modelway raises.

Each error carries the HTTP status and the machine-readable ``code`` that the one mapping in
``functions/api/http_errors.py`` turns into ``{"error": message, "code": code}``. Errors subclass
the nearest built-in so callers outside HTTP can still catch ``ValueError`` / ``LookupError``.
"""

from __future__ import annotations


class ModelwayError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}


class InvalidRequest(ModelwayError, ValueError):
    """The body is not a request at all: empty, not JSON, wrong shape of document."""

    status = 400
    code = "invalid_request"


class InvalidInput(ModelwayError, ValueError):
    """A well-formed request whose tensors do not fit the version's signature."""

    status = 422
    code = "invalid_tensor"


class Unauthenticated(ModelwayError, PermissionError):
    status = 401
    code = "unauthenticated"


class Forbidden(ModelwayError, PermissionError):
    status = 403
    code = "forbidden"


class NotFound(ModelwayError, LookupError):
    status = 404
    code = "not_found"


class Conflict(ModelwayError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ModelwayError, ValueError):
    status = 413
    code = "payload_too_large"


class Throttled(ModelwayError):
    status = 429
    code = "throttled"


class InvalidArtifact(ModelwayError, ValueError):
    """An artifact that must not be published: bad manifest, checksum, signature or parity."""

    status = 422
    code = "invalid_artifact"


class UpstreamError(ModelwayError, RuntimeError):
    """The model server answered, but with a failure."""

    status = 502
    code = "model_error"


class UpstreamUnavailable(ModelwayError, ConnectionError):
    status = 503
    code = "model_unavailable"


class UpstreamTimeout(ModelwayError, TimeoutError):
    status = 504
    code = "model_timeout"
