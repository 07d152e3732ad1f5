"""The runtime client contract: send one request to a version's endpoint variant.

Both implementations are boto3's ``sagemaker-runtime`` ``invoke_endpoint``; locally its
``endpoint_url`` points at the model server on loopback, which answers the same path
(``POST /endpoints/{endpoint}/invocations``). One code path, two places.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

JSON = "application/json"
# The content type SageMaker uses for the Open Inference Protocol binary tensor extension.
BINARY_JSON = "application/vnd.sagemaker-triton.binary+json"


@dataclass(frozen=True)
class RuntimeResponse:
    body: bytes
    content_type: str
    # The variant that answered (SageMaker's ``InvokedProductionVariant``).
    variant: str | None
    # What the model server reported beside the answer (SageMaker's ``CustomAttributes``),
    # e.g. its ``queue-ms`` and ``compute-ms``.
    attributes: Mapping[str, str] = field(default_factory=dict)


class RuntimeClient(Protocol):
    def invoke(
        self,
        *,
        endpoint: str,
        variant: str | None,
        body: bytes,
        content_type: str,
        deadline: float | None = None,
        request_id: str | None = None,
    ) -> RuntimeResponse:
        """Raises ``UpstreamError`` (model failed, 502, or the model's own 4xx passed through
        as ``InvalidInput``), ``UpstreamUnavailable`` (503) or ``UpstreamTimeout`` (504, also
        when ``deadline``, epoch seconds, passes first). ``request_id`` travels to the model
        server for its logs (``CustomAttributes``)."""
