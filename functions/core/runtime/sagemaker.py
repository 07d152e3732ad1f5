"""boto3 ``sagemaker-runtime`` ``invoke_endpoint``, with its failures mapped onto modelway errors.

The same client serves both places: on AWS it calls SageMaker; locally ``endpoint_url``
points it at the model server on loopback, which answers the same path and the same error
shapes (``x-amzn-ErrorType`` + JSON body), so the mapping below is exercised either way.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from functions.core.exceptions import (
    InvalidInput,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from functions.core.naming import component_name
from functions.core.runtime.base import RuntimeResponse

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient as Boto3RuntimeClient

# Seconds a client is told to wait before retrying a throttled or unreachable endpoint.
RETRY_AFTER_SECONDS = 1
# An inference component with no copy running answers a ValidationError saying it "has no
# capacity to process this request"; a copy takes minutes to start.
NO_CAPACITY = "no capacity"
SCALE_FROM_ZERO_RETRY_AFTER_SECONDS = 60
# Throttling, or a variant that is still loading: worth retrying shortly (503 + Retry-After).
_BUSY_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ModelNotReadyException",
    }
)
# The items of CustomAttributes the model server reads: its deadline and the request's id.
TIMEOUT_ATTRIBUTE = "timeout-ms"
REQUEST_ID_ATTRIBUTE = "request-id"
# Read timeouts (s) of the one-attempt clients used when a request's deadline is shorter than
# the usual client's worst case.
SHORT_READ_TIMEOUTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
# Region used when talking to the local model server, so no AWS configuration is needed.
LOCAL_REGION = "us-east-1"
# Connections kept open to the endpoint: as many as requests the router may have in flight at
# once under uvicorn (its thread pool), so none is opened and thrown away per request. botocore
# keeps 10 by default; a Lambda sandbox uses one.
MAX_POOL_CONNECTIONS = 64


class SageMakerRuntimeClient:
    def __init__(
        self,
        *,
        endpoint_url: str | None,
        region: str | None,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int,
        signed: bool = True,
        components: bool = False,
    ) -> None:
        """``signed=False`` only for the local model server, which checks no signature:
        SigV4 is about a third of botocore's CPU time per call, spent on nothing there.
        ``components``: versions are inference components (``deploy/components.py``), called
        by name, not variants of the endpoint."""
        self._signed = signed
        self._components = components
        self._endpoint_url = endpoint_url
        self._region = region
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max_attempts
        self._client: Boto3RuntimeClient | None = None
        # Clients with a shorter read timeout, by that timeout (see ``_client_within``).
        self._short: dict[float, Boto3RuntimeClient] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Boto3RuntimeClient:
        """Built on first use (never at import, so moto and tests can swap it); thread-safe."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def prepare(self) -> None:
        """Build the boto3 client and prime ``InvokeEndpoint`` (init phase; no connection)."""
        # The first connection encodes the host name as IDNA: a codec import otherwise paid
        # by the first event.
        import encodings.idna  # noqa: F401

        from functions.core.aws_clients import prime

        prime(
            self.client,
            "InvokeEndpoint",
            {"EndpointName": "modelway-prime", "Body": b"{}", "ContentType": "application/json"},
        )

    def _client_within(self, seconds: float) -> Boto3RuntimeClient:
        """A client that gives up within about ``seconds``: the usual one when its worst case
        (every attempt waiting out its read timeout) fits, else one that tries once with the
        longest read timeout of ``SHORT_READ_TIMEOUTS`` that fits, so that a model server that
        stops answering (hung, not dead) cannot hold a request past its deadline. At most one
        extra client per timeout, built on first use."""
        if self._read_timeout * self._max_attempts <= seconds:
            return self.client
        timeout = max(
            (t for t in SHORT_READ_TIMEOUTS if t <= seconds and t < self._read_timeout),
            default=SHORT_READ_TIMEOUTS[0],
        )
        client = self._short.get(timeout)
        if client is None:
            with self._lock:
                client = self._short.get(timeout)
                if client is None:
                    client = self._short[timeout] = self._build_client(
                        read_timeout=timeout, max_attempts=1
                    )
        return client

    def _build_client(
        self, *, read_timeout: float | None = None, max_attempts: int | None = None
    ) -> Boto3RuntimeClient:
        import boto3
        from botocore.config import Config

        max_attempts = max_attempts or self._max_attempts
        config = Config(
            connect_timeout=self._connect_timeout,
            read_timeout=read_timeout or self._read_timeout,
            # "standard" on purpose: it retries throttling and transient failures (5xx,
            # dropped connections) with jittered exponential backoff, and never retries a
            # model's own error (424). The total_max_attempts cap keeps the worst case, about
            # max_attempts x (connect + read timeout), inside API Gateway's 29 s limit when
            # the settings are chosen for it — "adaptive" could instead sleep client-side.
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )
        if not self._signed:
            from botocore import UNSIGNED

            config = config.merge(Config(signature_version=UNSIGNED))
        kwargs: dict[str, Any] = {"config": config}
        if self._endpoint_url:
            # The local model server checks no signature: dummy credentials keep boto3 from
            # searching for (and failing without) an AWS configuration.
            kwargs.update(
                endpoint_url=self._endpoint_url,
                region_name=self._region or LOCAL_REGION,
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )
        elif self._region:
            kwargs["region_name"] = self._region
        return boto3.client("sagemaker-runtime", **kwargs)

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
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        params: dict[str, Any] = {
            "EndpointName": endpoint,
            "Body": body,
            "ContentType": content_type,
        }
        if variant and self._components:
            params["InferenceComponentName"] = component_name(endpoint=endpoint, variant=variant)
        elif variant:
            params["TargetVariant"] = variant
        where = f"{endpoint}/{variant}" if variant else endpoint
        client = self.client
        attributes: dict[str, str] = {}
        if request_id:
            attributes[REQUEST_ID_ATTRIBUTE] = request_id
        if deadline is not None:
            left = deadline - time.time()
            if left <= 0:
                raise UpstreamTimeout(
                    f"the request's deadline passed before model endpoint {where} was called"
                )
            attributes[TIMEOUT_ATTRIBUTE] = str(int(left * 1000))
            client = self._client_within(left)
        if attributes:
            params["CustomAttributes"] = format_attributes(attributes)
        try:
            response = client.invoke_endpoint(**params)
            payload = response["Body"].read()
        except ClientError as exc:
            raise _from_client_error(exc, where=where) from exc
        # Timeouts first: ConnectTimeoutError is also an EndpointConnectionError.
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise UpstreamTimeout(f"model endpoint {where} timed out") from exc
        except (EndpointConnectionError, ConnectionClosedError) as exc:
            raise UpstreamUnavailable(
                f"model endpoint {where} is unreachable", retry_after=RETRY_AFTER_SECONDS
            ) from exc
        # A model server that dies mid-answer (killed, restarted) leaves a truncated body.
        except ResponseStreamingError as exc:
            raise UpstreamUnavailable(
                f"model endpoint {where} stopped mid-answer", retry_after=RETRY_AFTER_SECONDS
            ) from exc
        return RuntimeResponse(
            body=payload,
            content_type=response.get("ContentType") or content_type,
            variant=response.get("InvokedProductionVariant"),
            attributes=parse_attributes(response.get("CustomAttributes")),
        )


def _from_client_error(exc: Any, *, where: str) -> Exception:
    response = exc.response
    error = response.get("Error", {})
    code = error.get("Code", "")
    message = error.get("Message") or str(exc)
    if code == "ModelError":
        return _from_model_error(response, message=message, where=where)
    if code == "ValidationError" and NO_CAPACITY in message.lower():
        # An inference component at zero copies: its scale-from-zero alarm is adding one
        # (``deploy/component_scaling.py``), which takes minutes, not a second.
        return UpstreamUnavailable(
            f"model endpoint {where} is starting a copy of this version: {message}",
            retry_after=SCALE_FROM_ZERO_RETRY_AFTER_SECONDS,
        )
    if code == "ValidationError":
        # SageMaker's answer for an unknown endpoint or variant: nothing there to serve.
        return UpstreamUnavailable(f"model endpoint {where} is not available: {message}")
    if code in _BUSY_CODES:
        return UpstreamUnavailable(
            f"model endpoint {where} is busy: {message}", retry_after=RETRY_AFTER_SECONDS
        )
    return UpstreamError(f"model endpoint {where} failed: {message}")


def _from_model_error(response: dict[str, Any], *, message: str, where: str) -> Exception:
    """The container answered with an error: a 4xx is the caller's fault (passed through with
    the model's own message and code), anything else is the model failing."""
    try:
        status = int(response.get("OriginalStatusCode") or 0)
    except (TypeError, ValueError):
        status = 0
    original = response.get("OriginalMessage") or ""
    model_message, model_code = original or message, None
    try:
        parsed = json.loads(original)
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        model_message = parsed["error"]
        if isinstance(parsed.get("code"), str):
            model_code = parsed["code"]
    if status == 504:
        # The model server dropped the request at its deadline (``serving.deadlines``).
        return UpstreamTimeout(f"model at {where} timed out: {model_message}")
    if status == 503:
        return UpstreamUnavailable(
            f"model at {where} is busy: {model_message}", retry_after=RETRY_AFTER_SECONDS
        )
    if 400 <= status < 500:
        return InvalidInput(model_message, code=model_code)
    return UpstreamError(f"model at {where} failed: {model_message}")


def format_attributes(items: dict[str, str]) -> str:
    """``{"a": "1", "b": "2"}`` -> ``"a=1; b=2"``.

    SageMaker forwards ``CustomAttributes`` to the container verbatim (1024 visible ASCII
    characters at most) as ``X-Amzn-SageMaker-Custom-Attributes``, and no other header of
    ours; the model server reads ``timeout-ms`` (how long the caller waits, relative, so the
    two clocks need not agree) and ``request-id`` from it (``serving.deadlines``), and answers
    with its own (``queue-ms``, ``compute-ms``), which SageMaker returns to the caller.
    """
    return "; ".join(f"{key}={value}" for key, value in items.items())


def parse_attributes(raw: str | None) -> dict[str, str]:
    """``"a=1; b=2"`` -> ``{"a": "1", "b": "2"}``; items without ``=`` are skipped."""
    items: dict[str, str] = {}
    for item in (raw or "").split(";"):
        key, sep, value = item.partition("=")
        if sep:
            items[key.strip().lower()] = value.strip()
    return items
