"""The registry table's shape, defined once: the stack builds the table from it
(``infra/constructs/storage.py``) and so does ``create_table`` for tests and ``moto``
(``functions.core.registry.dynamodb.table``), so the two can never drift apart.

Plain data and the standard library only: ``infra`` imports it without loading any runtime
code, and the Lambda bundle loads it without boto3.
"""

from __future__ import annotations

PARTITION_KEY = "pk"
SORT_KEY = "sk"
GSI1 = "gsi1"
GSI1_PARTITION_KEY = "gsi1pk"
GSI1_SORT_KEY = "gsi1sk"
# Every key attribute is a string (DynamoDB type "S").
KEY_ATTRIBUTES = (PARTITION_KEY, SORT_KEY, GSI1_PARTITION_KEY, GSI1_SORT_KEY)
# The index carries whole items: listing keys and jobs reads them from it, with no second read.
GSI1_PROJECTION = "ALL"
# On demand: registry traffic follows requests, which no provisioned figure would fit.
BILLING_MODE = "PAY_PER_REQUEST"
# Unused by the registry's own items, which are all durable; reserved for anything that
# should expire on its own.
TTL_ATTRIBUTE = "expires_at"
