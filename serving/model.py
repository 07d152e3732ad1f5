"""One served version, KServe-style: ``load`` once, then per request
``preprocess`` (v2 request -> checked numpy inputs) -> ``predict`` (the dynamic batcher and
ONNX Runtime) -> ``postprocess`` (numpy -> v2 response)."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from serving.artifact import Artifact, open_artifact
from serving.batching import DynamicBatcher, RequestTiming, Tensors
from serving.config import ServingConfig
from serving.exceptions import ArtifactError, InvalidTensor
from serving.processing import TextPipeline, load_pipeline
from serving.protocol import EncodedResponse, InferRequest, OutputTensor, encode_response
from serving.session import SessionRunner, create_session
from serving.signature import (
    NUMPY_DTYPES,
    Signature,
    reconcile,
    signature_from_manifest,
    signature_from_session,
)

log = logging.getLogger("serving")


class OnnxModel:
    def __init__(
        self, *, artifact: Artifact, config: ServingConfig, name: str, version: str
    ) -> None:
        self.name = name
        self.version = version
        self.artifact = artifact
        self._config = config
        self.signature: Signature = artifact.signature
        self.ready = False
        self._batcher: DynamicBatcher | None = None
        # Text models: tokenize before the graph, pool/normalise/label after it.
        self._pipeline: TextPipeline | None = None

    @classmethod
    def from_source(
        cls,
        source: Path,
        *,
        config: ServingConfig,
        name: str | None = None,
        version: str | None = None,
        scratch_parent: Path | None = None,
    ) -> OnnxModel:
        """Open and load a version. ``name``/``version`` override the manifest's (local mode
        addresses versions by their place in the artifacts directory)."""
        artifact = open_artifact(source, scratch_parent=scratch_parent)
        if version is None:
            version = str(artifact.version) if artifact.version is not None else None
        model = cls(
            artifact=artifact,
            config=config,
            name=name or artifact.name,
            version=version or config.model_version or "unknown",
        )
        try:
            model.load()
        except BaseException:
            artifact.cleanup()
            raise
        return model

    # -- lifecycle ----------------------------------------------------------------------

    def load(self) -> None:
        session = create_session(self.artifact.model_path, threads=self._config.ort_threads)
        graph = signature_from_session(session)
        self._pipeline = load_pipeline(self.artifact.manifest, root=self.artifact.root)
        if self._pipeline is None:
            self.signature = reconcile(self.artifact.signature, graph)
            graph_outputs = [t.name for t in self.signature.outputs]
        else:
            # The client's signature (text in) is the manifest's; the graph's own tensors
            # are checked against ``graph_signature`` and stay internal.
            raw_graph = self.artifact.manifest.get("graph_signature")
            if raw_graph is None:
                raise ArtifactError("a manifest with processing must declare graph_signature")
            graph = reconcile(signature_from_manifest(raw_graph), graph)
            self._pipeline.processing.check(
                inputs=[t.name for t in self.artifact.signature.inputs],
                outputs=[t.name for t in self.artifact.signature.outputs],
                graph_inputs=[t.name for t in graph.inputs],
                graph_outputs=[t.name for t in graph.outputs],
            )
            self.signature = self.artifact.signature
            graph_outputs = [t.name for t in graph.outputs]
        self._output_names = [t.name for t in self.signature.outputs]
        self._session = SessionRunner(session, output_names=graph_outputs)
        self._warm_up()
        self._batcher = DynamicBatcher(
            run=self._run,
            name=f"{self.name}/{self.version}",
            max_batch_size=self._config.max_batch_size,
            max_queue_delay_s=self._config.max_queue_delay_ms / 1000.0,
            max_queue_size=self._config.max_queue_size,
            batchable=self.signature.batchable,
        )
        self.ready = True

    def _warm_up(self) -> None:
        """One run before the first request, so it does not pay lazy initialisation (memory
        arenas, CUDA kernels). A model that rejects the dummy input is still served."""
        dummy = {
            t.name: np.full(
                [d if d > 0 else 1 for d in t.shape],
                "warm up" if t.datatype == "BYTES" else 0,
                dtype=NUMPY_DTYPES[t.datatype],
            )
            for t in self.signature.inputs
        }
        try:
            self._run(dummy)
        except Exception as exc:
            log.warning("%s/%s: warm-up failed (%s); serving anyway", self.name, self.version, exc)

    def _run(self, inputs: Tensors) -> Tensors:
        """One batch: the graph, with the declared processing around it (in the batcher's
        worker, so a text batch is tokenized together and padded to its own longest row)."""
        if self._pipeline is None:
            return self._session.run(inputs)
        return self._pipeline.run(
            inputs,
            self._session.run,
            outputs=self._output_names,
            bucket=self._config.length_buckets,
        )

    def close(self, *, wait: bool = True) -> None:
        """Stop taking requests; queued ones still run. ``wait=False`` returns at once (the
        worker finishes them in the background), for callers on the event loop."""
        self.ready = False
        if self._batcher is not None:
            self._batcher.close(timeout=30.0 if wait else None)
        # ONNX Runtime holds the model in memory, so the files can go even mid-run.
        self.artifact.cleanup()

    @property
    def batcher(self) -> DynamicBatcher:
        if self._batcher is None:
            raise RuntimeError("model not loaded")
        return self._batcher

    # -- request path -------------------------------------------------------------------

    def preprocess(self, request: InferRequest) -> Tensors:
        """The graph's feeds. ``request`` was decoded against ``self.signature`` by the shared
        codec (names, datatypes, shapes and bounds, batch sizes, requested outputs)."""
        given = {t.name: t.array for t in request.inputs}
        missing = [t.name for t in self.signature.inputs if t.name not in given]
        if missing or len(given) != len(self.signature.inputs):
            raise InvalidTensor(
                f"inputs {sorted(given)} do not match the model's "
                f"{[t.name for t in self.signature.inputs]}; decode with the model's signature"
            )
        return {t.name: given[t.name] for t in self.signature.inputs}

    def predict(
        self,
        inputs: Tensors,
        *,
        announced: bool = False,
        deadline: float | None = None,
        timing: RequestTiming | None = None,
    ) -> Future[Tensors]:
        """``announced``: the caller called ``batcher.announce()`` when the request came in;
        ``deadline`` (``time.monotonic()``): after it the request is dropped, not computed;
        ``timing`` is filled in with its queue and compute time."""
        return self.batcher.submit(inputs, announced=announced, deadline=deadline, timing=timing)

    def postprocess(self, request: InferRequest, outputs: Tensors) -> EncodedResponse:
        if request.outputs is None:
            chosen = [(name, request.binary_output) for name in self._output_names]
        else:
            chosen = [
                (o.name, request.binary_output if o.binary is None else o.binary)
                for o in request.outputs
            ]
        tensors = []
        for name, binary in chosen:
            spec = self.signature.output(name)
            assert spec is not None  # the codec checked the requested outputs
            tensors.append(
                OutputTensor(name=name, datatype=spec.datatype, array=outputs[name], binary=binary)
            )
        return encode_response(
            model_name=self.name,
            model_version=self.version,
            request_id=request.id,
            outputs=tensors,
        )
