"""API Gateway API keys on the environment's usage plan: the AWS ``KeyGateway`` for
``functions.core.keys``.

The REST API takes its API key from the authorizer (API key source ``AUTHORIZER``): the
Lambda authorizer returns the caller's modelway secret as ``usageIdentifierKey``, and API
Gateway meters and throttles the usage-plan key whose *value* is that secret. So each
modelway key has one API Gateway key with the secret as its value, on
``settings.usage_plan_id``. API Gateway cannot change a key's value: rotation creates a key
with the new value and deletes the old one (``keys.rotate_key`` drives that order), and
revocation deletes it. API Gateway keys identify callers for quotas; whether a key may do
something is decided from the registry (the authorizer and the router).
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
        client: Any = None,
    ) -> None:
        self._usage_plan_id = usage_plan_id
        self._name_prefix = name_prefix
        self._client = LazyClient("apigateway", region=region, client=client)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiGatewayKeys:
        if not settings.usage_plan_id:
            raise ValueError("MODELWAY_USAGE_PLAN_ID is not set")
        return cls(
            usage_plan_id=settings.usage_plan_id,
            region=settings.region,
            name_prefix=settings.resolved_endpoint_prefix,
        )

    @property
    def _apigw(self) -> Any:
        return self._client.get()

    def create_api_key(self, *, key_id: str, name: str, secret: str) -> str:
        """An enabled API key whose value is ``secret``, on the usage plan; returns its id."""
        created = self._apigw.create_api_key(
            name=f"{self._name_prefix}-{key_id}",
            description=f"modelway key {key_id} ({name})"[:1024],
            enabled=True,
            value=secret,
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
