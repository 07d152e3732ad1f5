"""Errors the server raises; ``app`` turns each into the response its route speaks.

On ``/invocations`` that is ``{"error", "code"}`` with ``status``; on the SageMaker runtime
path (local mode) ``sagemaker_error_responses`` wraps the same error the way SageMaker does.
"""

from __future__ import annotations


class ServingError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}


class InvalidRequest(ServingError):
    """The body is not an inference request: not JSON, wrong document shape, bad binary part."""

    status = 400
    code = "invalid_request"


class InvalidTensor(ServingError):
    """A well-formed request whose tensors do not fit the model's signature (422, as the
    router answers it: both run the same codec)."""

    status = 422
    code = "invalid_tensor"


class PayloadTooLarge(ServingError):
    status = 413
    code = "payload_too_large"


class ModelFailure(ServingError):
    """ONNX Runtime failed on a request that passed validation."""

    status = 500
    code = "model_error"


class Overloaded(ServingError):
    """The version's queue is full; the caller should back off and retry."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int | None = 1) -> None:
        super().__init__(message, retry_after=retry_after)


class DeadlineExceeded(ServingError):
    """The request's deadline passed before it was computed: dropped, not run (504)."""

    status = 504
    code = "model_timeout"


class ArtifactError(ServingError):
    """An artifact that cannot be served: unsafe archive, bad manifest, checksum mismatch."""

    status = 500
    code = "invalid_artifact"


class UnknownTarget(ServingError):
    """Local runtime path only: no such endpoint or variant (SageMaker's ValidationError)."""

    status = 400
    code = "not_found"
