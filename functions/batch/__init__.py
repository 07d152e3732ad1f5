"""Batch scoring: an object created under ``inputs/{model}/{alias-or-version}/`` in the data
bucket is scored record by record into ``outputs/{model}/{version}/``.

``handler`` (the Lambda entry point) → ``dispatch`` (an event → one job per object version,
its lifecycle) → ``leases`` (claiming a job, compare-and-set writes) → ``slices`` (running it
across invocations) → ``results`` (the result and error files) → ``scoring`` (micro-batches
through the runtime client) over ``formats`` (which parser reads a file: ``jsonl_records`` /
``csv_records``, each yielding ``samples``, from the ``lines`` of the file) and ``events`` (S3
notifications, key layout). ``deps`` holds what a run is given, ``outcome`` what it reports.
"""
