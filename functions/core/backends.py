"""The one wiring point: the registry, artifact store, runtime client, deployer and API key
gateway that the settings ask for.

Every entry point gets them here — the router (``functions.api.deps``), the authorizer, the
batch and endpoint-events handlers, and the CLI — through :class:`Backends` (one per
settings object) or :func:`current` (the process's, for the settings in force), so that two
entry points can never wire the same environment differently (the CLI once made keys
without their API Gateway key). Each part is built on first use, and its imports are lazy,
so that a cold start loads only the backend in use. Tests swap a part with
``Backends(settings=…, registry=…)`` or :func:`use`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.core.artifacts.base import ArtifactStore
    from functions.core.deploy.base import Deployer
    from functions.core.keys import KeyGateway
    from functions.core.mirror import Mirror
    from functions.core.registry.base import Registry
    from functions.core.runtime.base import RuntimeClient
    from functions.core.settings import Settings


def make_registry(settings: Settings) -> Registry:
    if settings.is_local:
        from functions.core.registry.sqlite import SqliteRegistry

        return SqliteRegistry(path=settings.registry_path)
    from functions.core.registry.dynamodb import DynamoDBRegistry

    return DynamoDBRegistry(table_name=settings.table_name, region=settings.region)


def make_artifact_store(settings: Settings) -> ArtifactStore:
    if settings.is_local:
        from functions.core.artifacts.local import DirectoryArtifactStore

        return DirectoryArtifactStore(
            artifacts_dir=settings.artifacts_dir, data_dir=settings.data_dir
        )
    from functions.core.artifacts.s3 import S3ArtifactStore

    return S3ArtifactStore(
        bucket=settings.bucket_name,
        artifacts_prefix=settings.artifacts_prefix,
        region=settings.region,
        sse=settings.s3_sse,
        kms_key_id=settings.s3_kms_key_id,
    )


def make_runtime_client(settings: Settings) -> RuntimeClient:
    """The router's: its timeouts fit API Gateway's 29 s deadline."""
    return _runtime_client(
        settings,
        read_timeout=settings.runtime_read_timeout_seconds,
        max_attempts=settings.runtime_max_attempts,
    )


def make_batch_runtime_client(settings: Settings) -> RuntimeClient:
    """Batch scoring's, locally and on AWS: no gateway deadline, so it waits as long as
    SageMaker lets a model answer."""
    return _runtime_client(
        settings,
        read_timeout=settings.batch_runtime_read_timeout_seconds,
        max_attempts=settings.batch_runtime_max_attempts,
    )


def _runtime_client(settings: Settings, *, read_timeout: float, max_attempts: int) -> RuntimeClient:
    from functions.core.runtime.sagemaker import SageMakerRuntimeClient

    return SageMakerRuntimeClient(
        endpoint_url=settings.serving_url if settings.is_local else settings.runtime_endpoint_url,
        region=settings.region,
        connect_timeout=settings.runtime_connect_timeout_seconds,
        read_timeout=read_timeout,
        max_attempts=max_attempts,
        signed=not settings.is_local,
        components=settings.hosting == "components" and not settings.is_local,
    )


def make_key_gateway(settings: Settings) -> KeyGateway | None:
    """API Gateway usage-plan keys on AWS; none locally (or where no usage plan is set)."""
    if settings.is_local or not settings.usage_plan_id:
        return None
    from functions.core.gateway import ApiGatewayKeys

    return ApiGatewayKeys.from_settings(settings)


def make_deployer(settings: Settings) -> Deployer | None:
    """SageMaker models and endpoints on AWS; none locally, where the model server serves
    every version on disk (``functions.core.deploy.rollout`` then only moves the registry)."""
    if settings.is_local or not settings.sagemaker_deploy:
        return None
    if settings.hosting == "components":
        from functions.core.deploy.components import ComponentDeployer

        return ComponentDeployer.from_settings(settings)
    from functions.core.deploy.sagemaker import SageMakerDeployer

    return SageMakerDeployer.from_settings(settings)


def make_mirror(settings: Settings) -> Mirror:
    """The SageMaker Model Registry on AWS (with a serving image to name); nothing locally."""
    from functions.core.mirror import NoMirror, SageMakerMirror

    if settings.is_local or not settings.sagemaker_deploy or not settings.serving_image_uri:
        return NoMirror()
    from functions.core.aws_clients import LazyClient

    return SageMakerMirror(
        sagemaker=LazyClient("sagemaker", region=settings.region),
        prefix=settings.resolved_endpoint_prefix,
        image_uri=settings.serving_image_uri,
    )


_UNSET: Any = object()
_BUILDERS = {
    "registry": make_registry,
    "store": make_artifact_store,
    "runtime": make_runtime_client,
    "batch_runtime": make_batch_runtime_client,
    "key_gateway": make_key_gateway,
    "deployer": make_deployer,
    "mirror": make_mirror,
}


class Backends:
    """The backends of one environment (one ``Settings``), each built once, on first use,
    safely across threads; parts given to the constructor are used as they are."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry | None = _UNSET,
        store: ArtifactStore | None = _UNSET,
        runtime: RuntimeClient | None = _UNSET,
        batch_runtime: RuntimeClient | None = _UNSET,
        key_gateway: KeyGateway | None = _UNSET,
        deployer: Deployer | None = _UNSET,
        mirror: Mirror = _UNSET,
    ) -> None:
        self.settings = settings
        self._built: dict[str, Any] = {
            name: value
            for name, value in (
                ("registry", registry),
                ("store", store),
                ("runtime", runtime),
                ("batch_runtime", batch_runtime),
                ("key_gateway", key_gateway),
                ("deployer", deployer),
                ("mirror", mirror),
            )
            if value is not _UNSET
        }
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        return cls(settings=settings)

    @property
    def built(self) -> frozenset[str]:
        """The parts built (or given) so far."""
        return frozenset(self._built)

    def replace(self, **parts: Any) -> Backends:
        """These backends with some parts swapped (tests); the others as built so far."""
        return Backends(settings=self.settings, **{**self._built, **parts})

    def prepare(self, *parts: str) -> None:
        """Build ``parts`` now, and prime those with a ``prepare`` (the AWS clients: no
        connection, see ``functions.core.aws_clients.prime``), so that an entry point's init
        phase pays for them instead of its first event."""
        for name in parts:
            prepare = getattr(self._get(name), "prepare", None)
            if prepare is not None:
                prepare()

    def _get(self, name: str) -> Any:
        try:
            return self._built[name]
        except KeyError:
            pass
        with self._lock:
            if name not in self._built:
                self._built[name] = _BUILDERS[name](self.settings)
            return self._built[name]

    @property
    def registry(self) -> Registry:
        registry: Registry = self._get("registry")
        return registry

    @property
    def store(self) -> ArtifactStore:
        store: ArtifactStore = self._get("store")
        return store

    @property
    def runtime(self) -> RuntimeClient:
        runtime: RuntimeClient = self._get("runtime")
        return runtime

    @property
    def batch_runtime(self) -> RuntimeClient:
        runtime: RuntimeClient = self._get("batch_runtime")
        return runtime

    @property
    def key_gateway(self) -> KeyGateway | None:
        """API Gateway usage-plan keys on AWS; None locally."""
        gateway: KeyGateway | None = self._get("key_gateway")
        return gateway

    @property
    def deployer(self) -> Deployer | None:
        """SageMaker on AWS; None locally."""
        deployer: Deployer | None = self._get("deployer")
        return deployer

    @property
    def mirror(self) -> Mirror:
        """The SageMaker Model Registry mirror on AWS; a no-op locally."""
        mirror: Mirror = self._get("mirror")
        return mirror


_current: Backends | None = None
_pinned: Backends | None = None
_current_lock = threading.Lock()


def current() -> Backends:
    """This process's backends, for the settings in force (``get_settings()``): built once
    per settings object and kept (a Lambda container's life; a CLI command)."""
    from functions.core.settings import get_settings

    global _current
    if _pinned is not None:
        return _pinned
    settings = get_settings()
    found = _current
    if found is None or found.settings is not settings:
        with _current_lock:
            if _current is None or _current.settings is not settings:
                _current = Backends.from_settings(settings)
            found = _current
    return found


def use(backends: Backends | None) -> None:
    """Make ``backends`` this process's whatever the settings (tests); None goes back to
    building them from the settings in force."""
    global _current, _pinned
    _pinned = backends
    _current = None
