"""The registry's items on its one DynamoDB table, and their codec (items <-> dataclasses).

  item                    pk               sk                     gsi1pk / gsi1sk
  version counter         MODEL#{model}    COUNTER                -
  model (listing, moves)  MODEL#{model}    MODEL                  MODELS / {model}
  version                 MODEL#{model}    VERSION#{v:010d}       -
  sha256 lock             MODEL#{model}    SHA256#{sha256}        -
  alias                   MODEL#{model}    ALIAS#{alias}          -
  alias event             MODEL#{model}    EVENT#{n:010d}         -
  pending alias move      MODEL#{model}    PENDING#{alias}        -
  approval decision       MODEL#{model}    DECISION#{at}#{rand}   -
  key by id               KEY#{key_id}     KEY                    KEYS / {created}#{id}
  key-hash pointer        KEYHASH#{hash}   KEYHASH                -
  job                     JOB#{job_id}     JOB                    JOBS#{model} / {created}#{id}
  job feed entry          JOBS             {created_at}#{job_id}  -

``{hash}`` is the sha256 of a key's secret (``auth.hash_secret``); version items also carry
``refs``, the number of aliases and canaries pointing at them. Numbers in sort keys are
zero-padded so that text order is numeric order. Manifests and job
``extra`` are stored as JSON strings: DynamoDB numbers come back as ``Decimal`` and would not
round-trip a float-bearing manifest faithfully.
"""

from __future__ import annotations

import json
from typing import Any

from functions.core.registry.base import Alias, AliasEvent, ApiKey, Job, ModelVersion

Item = dict[str, Any]


def model_pk(model: str) -> str:
    return f"MODEL#{model}"


def version_sk(version: int) -> str:
    return f"VERSION#{version:010d}"


def sha_sk(sha256: str) -> str:
    return f"SHA256#{sha256}"


def alias_sk(alias: str) -> str:
    return f"ALIAS#{alias}"


def key_pk(key_id: str) -> str:
    return f"KEY#{key_id}"


def hash_pk(secret_hash: str) -> str:
    return f"KEYHASH#{secret_hash}"


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def item_key(pk: str, sk: str) -> Item:
    return {"pk": str_value(pk), "sk": str_value(sk)}


def key_update(fields: dict[str, str | None]) -> dict[str, Any]:
    """``UpdateExpression`` + values that SET the given fields, REMOVE-ing those set to None."""
    sets = [f"{name} = :{name}" for name, value in fields.items() if value is not None]
    removes = [name for name, value in fields.items() if value is None]
    expression = " ".join(
        part
        for part in (
            f"SET {', '.join(sets)}" if sets else "",
            f"REMOVE {', '.join(removes)}" if removes else "",
        )
        if part
    )
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeValues": {
            f":{name}": str_value(value) for name, value in fields.items() if value is not None
        },
    }


# Attribute values: the registry writes only strings, integers, booleans and string lists,
# so a tiny codec keeps Decimal out of the dataclasses.
def str_value(value: str) -> dict[str, str]:
    return {"S": value}


def num_value(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def put_optional(item: Item, name: str, value: str | int | None) -> None:
    if value is None:
        return
    item[name] = num_value(value) if isinstance(value, int) else str_value(value)


def read_str(item: Item, name: str) -> str:
    return str(item[name]["S"])


def read_opt_str(item: Item, name: str) -> str | None:
    return str(item[name]["S"]) if name in item else None


def read_int(item: Item, name: str) -> int:
    return int(item[name]["N"])


def read_opt_int(item: Item, name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def version_item(v: ModelVersion) -> Item:
    return {
        **item_key(model_pk(v.model), version_sk(v.version)),
        "type": str_value("version"),
        "model": str_value(v.model),
        "version": num_value(v.version),
        "sha256": str_value(v.sha256),
        "artifact_uri": str_value(v.artifact_uri),
        "manifest": str_value(json.dumps(v.manifest, sort_keys=True)),
        "created_at": str_value(v.created_at),
        "created_by": str_value(v.created_by),
        "endpoint_name": str_value(v.endpoint_name),
        "variant_name": str_value(v.variant_name),
        "status": str_value(v.status),
        "refs": num_value(0),
    }


def version_from(item: Item) -> ModelVersion:
    return ModelVersion(
        model=read_str(item, "model"),
        version=read_int(item, "version"),
        sha256=read_str(item, "sha256"),
        artifact_uri=read_str(item, "artifact_uri"),
        manifest=json.loads(read_str(item, "manifest")),
        created_at=read_str(item, "created_at"),
        created_by=read_str(item, "created_by"),
        endpoint_name=read_str(item, "endpoint_name"),
        variant_name=read_str(item, "variant_name"),
        status=read_str(item, "status"),
    )


def alias_item(a: Alias, before: Alias | None, seq: int) -> Item:
    item: Item = {
        **item_key(model_pk(a.model), alias_sk(a.alias)),
        "type": str_value("alias"),
        "model": str_value(a.model),
        "alias": str_value(a.alias),
        "version": num_value(a.version),
        "canary_weight": num_value(a.canary_weight),
        "updated_at": str_value(a.updated_at),
        "updated_by": str_value(a.updated_by),
        "seq": num_value(seq),
    }
    put_optional(item, "canary_version", a.canary_version)
    put_optional(item, "shadow_version", a.shadow_version)
    if a.shadow_percent or a.capture_percent:
        item["shadow_percent"] = num_value(a.shadow_percent)
        item["capture_percent"] = num_value(a.capture_percent)
    if before is not None:
        item["prev_version"] = num_value(before.version)
        item["prev_canary_weight"] = num_value(before.canary_weight)
        put_optional(item, "prev_canary_version", before.canary_version)
    return item


def alias_from(item: Item) -> Alias:
    return Alias(
        model=read_str(item, "model"),
        alias=read_str(item, "alias"),
        version=read_int(item, "version"),
        canary_version=read_opt_int(item, "canary_version"),
        canary_weight=read_int(item, "canary_weight"),
        updated_at=read_str(item, "updated_at"),
        updated_by=read_str(item, "updated_by"),
        shadow_version=read_opt_int(item, "shadow_version"),
        shadow_percent=read_opt_int(item, "shadow_percent") or 0,
        capture_percent=read_opt_int(item, "capture_percent") or 0,
    )


def alias_event(*, action: str, before: Alias | None, after: Alias, seq: int) -> AliasEvent:
    return AliasEvent(
        model=after.model,
        alias=after.alias,
        seq=seq,
        action=action,
        from_version=before.version if before else None,
        from_canary_version=before.canary_version if before else None,
        from_canary_weight=before.canary_weight if before else 0,
        to_version=after.version,
        to_canary_version=after.canary_version,
        to_canary_weight=after.canary_weight,
        actor=after.updated_by,
        at=after.updated_at,
        from_shadow_version=before.shadow_version if before else None,
        from_shadow_percent=before.shadow_percent if before else 0,
        from_capture_percent=before.capture_percent if before else 0,
        to_shadow_version=after.shadow_version,
        to_shadow_percent=after.shadow_percent,
        to_capture_percent=after.capture_percent,
    )


def event_item(e: AliasEvent, position: int) -> Item:
    item: Item = {
        **item_key(model_pk(e.model), f"EVENT#{position:010d}"),
        "type": str_value("alias_event"),
        "model": str_value(e.model),
        "alias": str_value(e.alias),
        "seq": num_value(e.seq),
        "action": str_value(e.action),
        "from_canary_weight": num_value(e.from_canary_weight),
        "to_version": num_value(e.to_version),
        "to_canary_weight": num_value(e.to_canary_weight),
        "actor": str_value(e.actor),
        "at": str_value(e.at),
    }
    put_optional(item, "from_version", e.from_version)
    put_optional(item, "from_canary_version", e.from_canary_version)
    put_optional(item, "to_canary_version", e.to_canary_version)
    put_optional(item, "from_shadow_version", e.from_shadow_version)
    put_optional(item, "to_shadow_version", e.to_shadow_version)
    for name in (
        "from_shadow_percent",
        "from_capture_percent",
        "to_shadow_percent",
        "to_capture_percent",
    ):
        if getattr(e, name):
            item[name] = num_value(getattr(e, name))
    return item


def event_from(item: Item) -> AliasEvent:
    return AliasEvent(
        model=read_str(item, "model"),
        alias=read_str(item, "alias"),
        seq=read_int(item, "seq"),
        action=read_str(item, "action"),
        from_version=read_opt_int(item, "from_version"),
        from_canary_version=read_opt_int(item, "from_canary_version"),
        from_canary_weight=read_int(item, "from_canary_weight"),
        to_version=read_int(item, "to_version"),
        to_canary_version=read_opt_int(item, "to_canary_version"),
        to_canary_weight=read_int(item, "to_canary_weight"),
        actor=read_str(item, "actor"),
        at=read_str(item, "at"),
        from_shadow_version=read_opt_int(item, "from_shadow_version"),
        from_shadow_percent=read_opt_int(item, "from_shadow_percent") or 0,
        from_capture_percent=read_opt_int(item, "from_capture_percent") or 0,
        to_shadow_version=read_opt_int(item, "to_shadow_version"),
        to_shadow_percent=read_opt_int(item, "to_shadow_percent") or 0,
        to_capture_percent=read_opt_int(item, "to_capture_percent") or 0,
    )


def key_item(k: ApiKey) -> Item:
    item: Item = {
        **item_key(key_pk(k.key_id), "KEY"),
        "type": str_value("key"),
        "gsi1pk": str_value("KEYS"),
        "gsi1sk": str_value(f"{k.created_at}#{k.key_id}"),
        "key_id": str_value(k.key_id),
        "name": str_value(k.name),
        "secret_hash": str_value(k.secret_hash),
        # A JSON string, not a list: an empty tuple (a key for no model) stays representable.
        "models": str_value(json.dumps(list(k.models))),
        "admin": {"BOOL": bool(k.admin)},
        "created_at": str_value(k.created_at),
        "tenant": str_value(k.tenant),
    }
    put_optional(item, "revoked_at", k.revoked_at)
    put_optional(item, "rotated_at", k.rotated_at)
    put_optional(item, "last_used_at", k.last_used_at)
    put_optional(item, "apigw_key_id", k.apigw_key_id)
    return item


def hash_pointer(secret_hash: str, key_id: str) -> Item:
    return {
        **item_key(hash_pk(secret_hash), "KEYHASH"),
        "type": str_value("key_hash"),
        "key_id": str_value(key_id),
    }


def key_from(item: Item) -> ApiKey:
    return ApiKey(
        key_id=read_str(item, "key_id"),
        name=read_str(item, "name"),
        secret_hash=read_str(item, "secret_hash"),
        models=tuple(json.loads(read_str(item, "models"))),
        admin=bool(item["admin"]["BOOL"]),
        created_at=read_str(item, "created_at"),
        tenant=read_str(item, "tenant"),
        revoked_at=read_opt_str(item, "revoked_at"),
        rotated_at=read_opt_str(item, "rotated_at"),
        last_used_at=read_opt_str(item, "last_used_at"),
        apigw_key_id=read_opt_str(item, "apigw_key_id"),
    )


def job_item(j: Job) -> Item:
    item: Item = {
        **item_key(job_pk(j.job_id), "JOB"),
        "type": str_value("job"),
        "gsi1pk": str_value(f"JOBS#{j.model}"),
        "gsi1sk": str_value(f"{j.created_at}#{j.job_id}"),
        "job_id": str_value(j.job_id),
        "model": str_value(j.model),
        "target": str_value(j.target),
        "input_uri": str_value(j.input_uri),
        "status": str_value(j.status),
        "created_at": str_value(j.created_at),
        "updated_at": str_value(j.updated_at),
        "records": num_value(j.records),
        "ok": num_value(j.ok),
        "errors": num_value(j.errors),
        "extra": str_value(json.dumps(j.extra, sort_keys=True)),
    }
    put_optional(item, "version", j.version)
    put_optional(item, "output_uri", j.output_uri)
    put_optional(item, "errors_uri", j.errors_uri)
    put_optional(item, "reason", j.reason)
    return item


def job_from(item: Item) -> Job:
    return Job(
        job_id=read_str(item, "job_id"),
        model=read_str(item, "model"),
        target=read_str(item, "target"),
        version=read_opt_int(item, "version"),
        input_uri=read_str(item, "input_uri"),
        status=read_str(item, "status"),
        created_at=read_str(item, "created_at"),
        updated_at=read_str(item, "updated_at"),
        records=read_int(item, "records"),
        ok=read_int(item, "ok"),
        errors=read_int(item, "errors"),
        output_uri=read_opt_str(item, "output_uri"),
        errors_uri=read_opt_str(item, "errors_uri"),
        reason=read_opt_str(item, "reason"),
        extra=json.loads(read_str(item, "extra")),
    )
