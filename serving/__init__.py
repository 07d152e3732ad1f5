"""The modelway model server.

Runs inside the SageMaker container (the hosting contract: ``GET /ping``, ``POST /invocations``)
and on a laptop, where it also answers the SageMaker *runtime* path
``POST /endpoints/{endpoint}/invocations`` for every version in a local artifacts directory.

Imports only numpy, onnxruntime, starlette/uvicorn and the standard library: it ships alone in
its container, so nothing from ``functions`` (or torch) may leak in.

Entry points: ``python -m serving serve`` / ``python -m serving local`` (see ``__main__``), and
``serving.app.create_hosting_app`` / ``serving.app.create_local_app`` for in-process use.
"""
