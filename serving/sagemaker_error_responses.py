"""Errors on the local SageMaker *runtime* path, shaped like the real service's so that
boto3's ``sagemaker-runtime`` client parses them unchanged.

botocore (rest-json) takes the code from the ``x-amzn-ErrorType`` header and the message from
the body's ``message``/``Message``; for the modelled ``ModelError`` it also lifts the body's
members to the top of the error response. Observed with boto3 against this server
(``tests/serving/test_local_boto3.py``), for ``except ClientError as e``:

====================================  ======================================================
situation                             what the caller sees
====================================  ======================================================
unknown endpoint or variant           HTTP 400, ``e.response["Error"]["Code"] ==
                                      "ValidationError"``, ``["Error"]["Message"]`` e.g.
                                      ``"Endpoint modelway-local-nope not found."``
model refused the tensors             HTTP 424, ``["Error"]["Code"] == "ModelError"``,
                                      ``e.response["OriginalStatusCode"] == 422``,
                                      ``e.response["OriginalMessage"]`` = the model's JSON
                                      body ``{"error": ..., "code": "invalid_tensor"}``
                                      (or 400 ``invalid_request``),
                                      ``e.response["LogStreamArn"]``
model failed / artifact unloadable    as above with ``OriginalStatusCode == 500``
request body over the server's limit  as above with ``OriginalStatusCode == 413``
version's queue full                  HTTP 503, ``["Error"]["Code"] ==
                                      "ServiceUnavailable"`` (botocore retries these)
====================================  ======================================================

The runtime client maps them: ModelError with a 4xx original -> 422 invalid tensor, with a
5xx original -> 502; ValidationError -> 503 (endpoint or variant missing); ServiceUnavailable
-> 503.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from serving.exceptions import ServingError


def _error(
    status: int, error_type: str, body: dict[str, Any], *, retry_after: int | None = None
) -> Response:
    headers = {"x-amzn-ErrorType": error_type}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(
        content=json.dumps(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def validation_error(message: str) -> Response:
    # Both spellings: botocore reads either; the real service sends "Message".
    return _error(400, "ValidationError", {"message": message, "Message": message})


def service_unavailable(message: str, *, retry_after: int | None = 1) -> Response:
    return _error(
        503,
        "ServiceUnavailable",
        {"message": message, "Message": message},
        retry_after=retry_after,
    )


def model_error(exc: ServingError) -> Response:
    """What SageMaker answers when the container returned a non-2xx: 424, with the
    container's status and body passed along as ``OriginalStatusCode``/``OriginalMessage``."""
    original = json.dumps(exc.to_dict())
    side = "client" if exc.status < 500 else "server"
    message = f'Received {side} error ({exc.status}) from model with message "{original}".'
    return _error(
        424,
        "ModelError",
        {
            "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
            "message": message,
            "Message": message,
            "OriginalStatusCode": exc.status,
            "OriginalMessage": original,
            "LogStreamArn": "",
        },
    )
