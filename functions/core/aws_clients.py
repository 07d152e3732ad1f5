"""boto3 clients built on first use, once, safely across threads.

Never at import time: a cold start pays only for the clients a request needs, and tests can
put moto in place (or pass a client in) before one exists. Every client uses botocore's
"standard" retry mode on purpose: it retries throttling and transient 5xx / connection errors
with jittered exponential backoff under a client-side retry quota, the same way in every AWS
SDK ("legacy" knows fewer error codes and has no quota, so a struggling service would be
hammered harder).
"""

from __future__ import annotations

import threading
from typing import Any


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
