"""Checks a response against the router's OpenAPI document: the API suite's test clients and
the integration suite's HTTP calls run every response they see through ``ContractChecker``
(see ``tests/api/conftest.py`` and ``tests/integration/conftest.py``).

A response is allowed when its path and method are documented and its status is listed for
the operation, with a body that validates against the listed schema; a documented path
with an undocumented method must be 405 with an ``Allow`` header naming exactly the
documented methods; an undocumented path must be 404. Every error body is
``{"error", "code"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx
from jsonschema import Draft202012Validator

ERROR_BODY = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
}
# Served beside the API, not part of it: the document and its page (functions.api.docs).
UNDOCUMENTED = {"/openapi.json", "/docs", "/docs/"}
UNDOCUMENTED_PREFIXES = ("/docs/",)


def _regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


class ContractViolation(AssertionError):
    pass


class ContractChecker:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.components = document.get("components", {})
        self.paths = [(_regex(t), t, ops) for t, ops in document.get("paths", {}).items()]
        self.seen: list[tuple[str, str, int]] = []

    def check(
        self,
        *,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> None:
        """Raises ``ContractViolation`` for a response the document does not allow."""
        method = method.lower()
        where = f"{method.upper()} {path} -> {status}"
        if path in UNDOCUMENTED or path.startswith(UNDOCUMENTED_PREFIXES):
            if status >= 400:
                self._validate(ERROR_BODY, headers, body, where)
            return
        matches = [(t, ops) for regex, t, ops in self.paths if regex.fullmatch(path)]
        if status >= 400 and method != "head":  # a HEAD answer has no body
            self._validate(ERROR_BODY, headers, body, where)
        if not matches:
            if status != 404:
                raise ContractViolation(f"{where}: an undocumented path must be 404")
            return
        operations = {m: (t, op) for t, ops in matches for m, op in ops.items()}
        if method not in operations:
            allowed = ", ".join(sorted(m.upper() for m in operations))
            if status != 405:
                raise ContractViolation(f"{where}: the document has no {method.upper()} here")
            if headers.get("allow") != allowed:
                raise ContractViolation(
                    f"{where}: Allow is {headers.get('allow')!r}, the document says {allowed!r}"
                )
            return
        template, operation = operations[method]
        responses = operation.get("responses", {})
        documented = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        if documented is None:
            raise ContractViolation(
                f"{where}: {method.upper()} {template} documents only {sorted(responses)}"
            )
        self.seen.append((method.upper(), template, status))
        schema = documented.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None and headers.get("content-type", "").startswith("application/json"):
            self._validate(schema, headers, body, where)

    def _validate(
        self, schema: Mapping[str, Any], headers: Mapping[str, str], body: bytes, where: str
    ) -> None:
        if not headers.get("content-type", "").startswith("application/json"):
            raise ContractViolation(f"{where}: not JSON ({headers.get('content-type')!r})")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise ContractViolation(f"{where}: body is not JSON: {exc}") from None
        root = {**schema, "components": self.components}
        errors = sorted(Draft202012Validator(root).iter_errors(document), key=str)
        if errors:
            raise ContractViolation(f"{where}: {errors[0].message} in {body[:300]!r}")

    def check_response(self, response: httpx.Response) -> None:
        response.read()
        self.check(
            method=response.request.method,
            path=response.request.url.path,
            status=response.status_code,
            headers=response.headers,
            body=response.content,
        )
