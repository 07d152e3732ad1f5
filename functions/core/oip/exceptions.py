"""What the codec raises. Each subclasses the platform error of the same meaning, so the one
HTTP mapping in ``functions/api/http_errors.py`` (and the model server's, which reads ``status`` and
``code``) answers ``{"error", "code"}`` with the right status without knowing the codec."""

from __future__ import annotations

from functions.core.exceptions import InvalidInput, InvalidRequest, PayloadTooLarge


class ProtocolError(InvalidRequest):
    """400: the body is not an inference request (not JSON, too deep, lying binary sizes)."""


class NestedTooDeep(ProtocolError):
    """400: JSON nested deeper than the limit (refused before the parser recurses)."""


class TensorError(InvalidInput):
    """422: a well-formed request whose tensors do not fit the signature."""


class TensorTooLarge(PayloadTooLarge):
    """413: a tensor that declares more elements or bytes than the codec will hold."""


class SignatureError(ValueError):
    """A signature (a manifest's, or a graph's against it) that breaks the rules. Not an HTTP
    error: publishing turns it into ``InvalidArtifact``, the model server into a load failure."""
