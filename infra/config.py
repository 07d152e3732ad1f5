"""What one environment (dev, staging, prod) is made of, parsed from ``cdk.json`` context.

Only ``infra/app.py`` reads context; it turns the environment's block into the frozen
:class:`EnvironmentConfig` below and hands typed values to the stack. Parsing is strict on
purpose: an unknown key is almost always a typo that would otherwise silently fall back to a
default, and a deploy is the wrong moment to find out.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557}
    | {2922, 3288, 3653}
)
# No '-' in an environment's name: IAM, EventBridge and SageMaker patterns name an
# environment's resources ``modelway-{env}-*``, which must not also match ``{env}-eu``.
ENV_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
TIER_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# API Gateway stops waiting for a Lambda proxy integration after 29 s by default.
API_INTEGRATION_TIMEOUT_SECONDS = 29
LAMBDA_MAX_TIMEOUT_SECONDS = 900


class ConfigError(ValueError):
    """The environment's settings are missing, unknown or invalid."""


@dataclass(frozen=True)
class FunctionConfig:
    memory_mb: int
    timeout_seconds: int
    # Lambda SnapStart on the published version API Gateway invokes (infra/README.md: cost).
    snap_start: bool


@dataclass(frozen=True)
class LambdaConfig:
    api: FunctionConfig
    authorizer: FunctionConfig


@dataclass(frozen=True)
class Throttle:
    rate_limit: float
    burst_limit: int


@dataclass(frozen=True)
class UsagePlanTier:
    rate_limit: float
    burst_limit: int
    quota_limit: int
    quota_period: Literal["DAY", "WEEK", "MONTH"]


@dataclass(frozen=True)
class ApiConfig:
    authorizer_cache_ttl_seconds: int
    # How long each router instance caches a key lookup (revocation reaches it after this).
    key_cache_ttl_seconds: int
    stage_throttle: Throttle
    usage_plans: dict[str, UsagePlanTier]
    default_tier: str
    # Empty means CORS is off: the API is for programs, not browsers, unless asked.
    cors_allow_origins: list[str]


@dataclass(frozen=True)
class ComponentConfig:
    """One version's inference component (``hosting: components``): what a copy reserves,
    the copies a version an alias points at keeps, the most it scales to, and the concurrent
    requests per copy target tracking aims at."""

    accelerators: int
    memory_mb: int
    min_copies: int
    max_copies: int
    target_concurrency: int


@dataclass(frozen=True)
class SageMakerConfig:
    # "variants": a production variant (own instances) per version kept; "components": one
    # fleet per model, an inference component per version (functions.core.deploy).
    hosting: Literal["variants", "components"]
    components: ComponentConfig
    instance_type: str
    initial_instance_count: int
    min_instance_count: int
    max_instance_count: int
    target_invocations_per_instance: int
    scale_in_cooldown_seconds: int
    scale_out_cooldown_seconds: int
    # Deployment guardrails for endpoint updates: how traffic shifts to a new version, and
    # how long each step bakes while the rollback alarm is watched.
    deploy_traffic_routing: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"]
    deploy_canary_percent: int
    deploy_wait_interval_seconds: int


@dataclass(frozen=True)
class AlarmConfig:
    api_5xx_rate_percent: float
    api_p99_latency_ms: int
    evaluation_periods: int
    # 5xx answers in one minute that make SageMaker roll a deployment back.
    rollback_5xx_count: int
    emails: list[str]


@dataclass(frozen=True)
class BatchConfig:
    memory_mb: int
    timeout_seconds: int
    retry_attempts: int
    max_event_age_seconds: int
    # None: no reserved concurrency (shares the account pool).
    max_concurrency: int | None
    dlq_retention_days: int


@dataclass(frozen=True)
class DataConfig:
    outputs_expiration_days: int
    uploads_expiration_days: int
    access_logs_expiration_days: int
    captures_expiration_days: int


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    removal_policy: Literal["destroy", "retain"]
    termination_protection: bool
    # Aliases move only to versions an admin other than the publisher approved
    # (functions.core.approval); MODELWAY_REQUIRE_APPROVAL on every function.
    require_approval: bool
    log_retention_days: int
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    lambdas: LambdaConfig
    api: ApiConfig
    sagemaker: SageMakerConfig
    alarms: AlarmConfig
    batch: BatchConfig
    data: DataConfig

    @property
    def endpoint_prefix(self) -> str:
        """Every SageMaker name of this environment starts with it (``modelway-{env}``)."""
        return f"modelway-{self.name}"

    @property
    def retain(self) -> bool:
        return self.removal_policy == "retain"


def load_environment(environments: Mapping[str, Any] | None, name: str | None) -> EnvironmentConfig:
    """Pick ``name`` out of the ``environments`` context block and parse it."""
    if not environments:
        raise ConfigError('cdk.json has no "environments" context block')
    known = ", ".join(sorted(environments))
    if not name:
        raise ConfigError(f"choose an environment with -c env=NAME (one of: {known})")
    if name not in environments:
        raise ConfigError(f"unknown environment {name!r}: cdk.json defines {known}")
    if not ENV_NAME_RE.match(name):
        raise ConfigError(f"environment name {name!r} must match {ENV_NAME_RE.pattern}")
    raw = environments[name]
    if not isinstance(raw, Mapping):
        raise ConfigError(f"environments.{name} must be an object")
    config = _parse(EnvironmentConfig, {**raw, "name": name}, where=f"environments.{name}")
    _validate(config, where=f"environments.{name}")
    return config


T = TypeVar("T")


def _parse(cls: type[T], raw: Any, *, where: str) -> T:
    """Builds dataclass ``cls`` from ``raw``, checking every key and type on the way."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be an object")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    missing = sorted(fields - set(raw))
    if missing:
        raise ConfigError(f"{where}: missing setting(s) {', '.join(missing)}")
    values = {key: _coerce(hints[key], raw[key], where=f"{where}.{key}") for key in fields}
    return cls(**values)


def _coerce(tp: Any, value: Any, *, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _parse(tp, value, where=where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _coerce(inner, value, where=where)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where} must be one of {choices}, not {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list")
        return [_coerce(args[0], v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping) or not value:
            raise ConfigError(f"{where} must be a non-empty object")
        return {str(k): _coerce(args[1], v, where=f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a non-empty string")
        return value
    raise TypeError(f"no parser for {tp!r} at {where}")  # a bug in this module, not in cdk.json


def _validate(c: EnvironmentConfig, *, where: str) -> None:
    problems: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    check(
        c.log_retention_days in LOG_RETENTION_DAYS,
        f"log_retention_days {c.log_retention_days} is not a CloudWatch retention period",
    )
    for fname, fn in (("api", c.lambdas.api), ("authorizer", c.lambdas.authorizer)):
        check(128 <= fn.memory_mb <= 10240, f"lambdas.{fname}.memory_mb must be 128..10240")
        check(
            1 <= fn.timeout_seconds <= API_INTEGRATION_TIMEOUT_SECONDS,
            f"lambdas.{fname}.timeout_seconds must be 1..{API_INTEGRATION_TIMEOUT_SECONDS} "
            "(API Gateway's integration timeout)",
        )
    check(
        0 <= c.api.authorizer_cache_ttl_seconds <= 3600,
        "api.authorizer_cache_ttl_seconds must be 0..3600",
    )
    check(0 <= c.api.key_cache_ttl_seconds <= 3600, "api.key_cache_ttl_seconds must be 0..3600")
    check(
        c.api.default_tier in c.api.usage_plans,
        f"api.default_tier {c.api.default_tier!r} is not one of api.usage_plans",
    )
    for tier, plan in c.api.usage_plans.items():
        check(bool(TIER_NAME_RE.match(tier)), f"usage plan tier {tier!r}: bad name")
        check(
            plan.rate_limit > 0 and plan.burst_limit > 0 and plan.quota_limit > 0,
            f"api.usage_plans.{tier}: limits must be positive",
        )
    sm = c.sagemaker
    check(sm.instance_type.startswith("ml."), "sagemaker.instance_type must be an ml.* type")
    if sm.hosting == "variants":
        check(
            1 <= sm.min_instance_count <= sm.initial_instance_count <= sm.max_instance_count,
            "sagemaker: need 1 <= min_instance_count <= initial_instance_count <= "
            "max_instance_count",
        )
    else:
        # Managed instance scaling may take the fleet to zero when no component has a copy.
        check(
            0 <= sm.min_instance_count <= sm.max_instance_count
            and 1 <= sm.initial_instance_count <= sm.max_instance_count,
            "sagemaker: need 0 <= min_instance_count <= max_instance_count and "
            "1 <= initial_instance_count <= max_instance_count",
        )
        ic = sm.components
        check(
            ic.accelerators >= 0 and ic.memory_mb >= 128,
            "sagemaker.components: accelerators >= 0 and memory_mb >= 128",
        )
        check(
            1 <= ic.min_copies <= ic.max_copies and ic.target_concurrency >= 1,
            "sagemaker.components: need 1 <= min_copies <= max_copies, target_concurrency >= 1",
        )
    # SageMaker's traffic routing: a canary is at most 50% of the fleet, a linear step 10-50%.
    low = 10 if sm.deploy_traffic_routing == "LINEAR" else 1
    check(
        low <= sm.deploy_canary_percent <= 50,
        f"sagemaker.deploy_canary_percent must be {low}..50 with "
        f"{sm.deploy_traffic_routing} traffic routing (SageMaker's limit)",
    )
    check(
        0 <= sm.deploy_wait_interval_seconds <= 3600,
        "sagemaker.deploy_wait_interval_seconds must be 0..3600",
    )
    check(
        sm.target_invocations_per_instance > 0,
        "sagemaker.target_invocations_per_instance must be positive",
    )
    check(0 < c.alarms.api_5xx_rate_percent <= 100, "alarms.api_5xx_rate_percent must be 0..100")
    check(
        c.alarms.api_p99_latency_ms > 0
        and c.alarms.evaluation_periods > 0
        and c.alarms.rollback_5xx_count > 0,
        "alarms: thresholds must be positive",
    )
    b = c.batch
    check(128 <= b.memory_mb <= 10240, "batch.memory_mb must be 128..10240")
    check(
        1 <= b.timeout_seconds <= LAMBDA_MAX_TIMEOUT_SECONDS,
        f"batch.timeout_seconds must be 1..{LAMBDA_MAX_TIMEOUT_SECONDS} (Lambda's limit)",
    )
    check(0 <= b.retry_attempts <= 2, "batch.retry_attempts must be 0..2 (Lambda async retries)")
    check(60 <= b.max_event_age_seconds <= 21600, "batch.max_event_age_seconds must be 60..21600")
    check(
        b.max_concurrency is None or b.max_concurrency >= 1,
        "batch.max_concurrency must be null or >= 1",
    )
    check(1 <= b.dlq_retention_days <= 14, "batch.dlq_retention_days must be 1..14 (SQS limit)")
    d = c.data
    check(
        min(
            d.outputs_expiration_days,
            d.uploads_expiration_days,
            d.access_logs_expiration_days,
            d.captures_expiration_days,
        )
        >= 1,
        "data: expirations must be >= 1 day",
    )
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
