"""boto3 clients built on first use, once, safely across threads.

Never at import time: a cold start pays only for the clients a request needs, and tests can
put moto in place (or pass a client in) before one exists. Every client uses botocore's
"standard" retry mode on purpose: it retries throttling and transient 5xx / connection errors
with jittered exponential backoff under a client-side retry quota, the same way in every AWS
SDK ("legacy" knows fewer error codes and has no quota, so a struggling service would be
hammered harder).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger("modelway.aws")


class LazyClient:
    def __init__(
        self,
        service: str,
        *,
        region: str | None,
        max_attempts: int = 5,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        client: Any = None,
    ) -> None:
        self._service = service
        self._region = region
        self._options: dict[str, Any] = {
            "retries": {"mode": "standard", "max_attempts": max_attempts}
        }
        if connect_timeout is not None:
            self._options["connect_timeout"] = connect_timeout
        if read_timeout is not None:
            self._options["read_timeout"] = read_timeout
        self._client = client
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    # A session per client: boto3's default session is not safe to share
                    # across threads while clients are being created. (Any: the service
                    # name is a runtime value, not one of boto3-stubs' literal overloads.)
                    session: Any = boto3.session.Session()
                    self._client = session.client(
                        self._service, region_name=self._region, config=Config(**self._options)
                    )
        return self._client


def prime(
    client: Any,
    operation: str,
    params: dict[str, Any],
    *,
    body: bytes = b"{}",
    headers: dict[str, str] | None = None,
) -> None:
    """Run one ``operation`` call through ``client`` with the network cut out.

    botocore does on a client's first call of an operation what it never does again: it loads
    the operation's model, resolves the endpoint rules, builds the serializer and the parser.
    Priming during the init phase moves that cost out of the first event (and, under
    SnapStart, into the snapshot). A ``before-send`` hook answers the request, so the call is
    serialized and signed as a real one is but opens no connection that a snapshot would
    carry into many sandboxes.
    """
    import io

    from botocore.awsrequest import AWSResponse, HTTPHeaders
    from urllib3.response import HTTPResponse

    answer_headers = {"content-type": "application/json", **(headers or {})}

    def answer(request: Any, **_: Any) -> AWSResponse:
        raw = HTTPResponse(
            body=io.BytesIO(body), headers=answer_headers, status=200, preload_content=False
        )
        return AWSResponse(request.url, 200, HTTPHeaders.from_dict(answer_headers), raw)

    event = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    unique_id = f"modelway-prime-{operation}"
    client.meta.events.register_first(event, answer, unique_id=unique_id)
    try:
        from botocore import xform_name

        getattr(client, xform_name(operation))(**params)
    except Exception:  # an optimisation: never a reason for the init phase to fail
        logger.warning("priming %s failed; its first call pays instead", operation, exc_info=True)
    finally:
        client.meta.events.unregister(event, unique_id=unique_id)
