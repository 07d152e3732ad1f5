"""Batch scoring: an object created under ``inputs/{model}/{alias-or-version}/`` in the data
bucket is scored record by record into ``outputs/{model}/{version}/``.

``handler`` (the Lambda entry point) → ``jobs`` (one job per object version: idempotency,
lifecycle, slices across invocations) → ``scoring`` (micro-batches through the runtime client)
over ``formats`` (JSON Lines / CSV records) and ``events`` (S3 notifications, key layout).
"""
