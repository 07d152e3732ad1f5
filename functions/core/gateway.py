"""API Gateway API keys on the environment's usage plan: the AWS ``KeyGateway`` for
``functions.core.keys``.

The REST API takes its API key from the authorizer (API key source ``AUTHORIZER``): the
Lambda authorizer returns ``keys.usage_key_value(secret_hash)`` of the caller's key as
``usageIdentifierKey``, and API Gateway meters and throttles the usage-plan key whose *value*
that is. So each modelway key has one API Gateway key, on ``settings.usage_plan_id``, whose
value is derived from the stored hash — never the secret, which API Gateway would hand to
anyone allowed ``apigateway:GET``. API Gateway cannot change a key's value: rotation creates
a key with the new value and deletes the old one (``keys.rotate_key`` drives that order), and
revocation deletes it. API Gateway keys identify callers for quotas; whether a key may do
something is decided from the registry (the authorizer and the router).

The stage caches the authorizer's answer per key for its TTL; ``flush_authorizer_cache``
(FlushStageAuthorizersCache) drops those answers so that a revoked or rotated key is checked
again at its next request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.core.aws_clients import LazyClient

if TYPE_CHECKING:
    from functions.core.settings import Settings


class ApiGatewayKeys:
    def __init__(
        self,
        *,
        usage_plan_id: str,
        region: str | None = None,
        name_prefix: str = "modelway",
        rest_api_id: str | None = None,
        stage_name: str | None = None,
        client: Any = None,
    ) -> None:
        self._usage_plan_id = usage_plan_id
        self._name_prefix = name_prefix
        self._rest_api_id = rest_api_id
        self._stage_name = stage_name
        self._client = LazyClient("apigateway", region=region, client=client)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiGatewayKeys:
        if not settings.usage_plan_id:
            raise ValueError("MODELWAY_USAGE_PLAN_ID is not set")
        return cls(
            usage_plan_id=settings.usage_plan_id,
            region=settings.region,
            name_prefix=settings.resolved_endpoint_prefix,
            rest_api_id=settings.rest_api_id,
            stage_name=settings.stage_name,
        )

    @property
    def _apigw(self) -> Any:
        return self._client.get()

    def create_api_key(self, *, key_id: str, name: str, value: str) -> str:
        """An enabled API key with ``value``, on the usage plan; returns its id."""
        created = self._apigw.create_api_key(
            name=f"{self._name_prefix}-{key_id}",
            description=f"modelway key {key_id} ({name})"[:1024],
            enabled=True,
            value=value,
            tags={"modelway:key_id": key_id},
        )
        apigw_key_id = str(created["id"])
        try:
            self._apigw.create_usage_plan_key(
                usagePlanId=self._usage_plan_id, keyId=apigw_key_id, keyType="API_KEY"
            )
        except BaseException:
            # A key outside the plan would pass no request anyway; do not leave it behind.
            self.delete_api_key(apigw_key_id=apigw_key_id)
            raise
        return apigw_key_id

    def delete_api_key(self, *, apigw_key_id: str) -> None:
        """Off the usage plan, then deleted. Idempotent."""
        from botocore.exceptions import ClientError

        try:
            self._apigw.get_api_key(apiKey=apigw_key_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NotFoundException":
                return  # deleted before
            raise
        # Deleting a key takes it off its plans too; saying so first keeps that explicit
        # (and a key whose deletion fails is at least no longer metered as a caller).
        for call, kwargs in (
            (
                self._apigw.delete_usage_plan_key,
                {"usagePlanId": self._usage_plan_id, "keyId": apigw_key_id},
            ),
            (self._apigw.delete_api_key, {"apiKey": apigw_key_id}),
        ):
            try:
                call(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NotFoundException":
                    raise

    def flush_authorizer_cache(self) -> None:
        """Drop the stage's cached authorizer answers (no-op when the stage is not known)."""
        if not (self._rest_api_id and self._stage_name):
            return
        self._apigw.flush_stage_authorizers_cache(
            restApiId=self._rest_api_id, stageName=self._stage_name
        )
