"""The registry on one DynamoDB table (single-table design): the AWS backend.

One module per concern, each with the access patterns it uses in its docstring:

- ``items``: the items on the table (their keys, the layout table) and their codec;
- ``table``: ``create_table`` (tests, ``moto``) and the calls every part makes (consistent
  reads, paginated queries, batch reads, transactions with conflict retries);
- ``versions``, ``aliases``, ``approvals``, ``keys``, ``jobs``: the registry's parts, one per
  narrow store protocol of ``functions.core.registry.base``.

The table itself is created by the stack (``infra``) from ``functions.core.registry.table_shape``.
"""

from __future__ import annotations

from functions.core.registry.dynamodb.aliases import AliasesPart
from functions.core.registry.dynamodb.approvals import ApprovalsPart
from functions.core.registry.dynamodb.jobs import JobsPart
from functions.core.registry.dynamodb.keys import KeysPart
from functions.core.registry.dynamodb.table import create_table
from functions.core.registry.dynamodb.versions import VersionsPart

__all__ = ["DynamoDBRegistry", "create_table"]


class DynamoDBRegistry(ApprovalsPart, VersionsPart, AliasesPart, KeysPart, JobsPart):
    """The whole ``Registry`` on one table (``table_name``, in ``region``)."""
