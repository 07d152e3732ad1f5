"""Call modelway with Triton's Open Inference Protocol client (``tritonclient[http]``).

Nothing modelway in it: the router speaks the protocol, so the standard client works with the
key passed as a header. Runs against ``make up`` (or any modelway API)::

    MODELWAY_URL=http://127.0.0.1:8000 MODELWAY_API_KEY=mw_key_... python examples/oip_client.py

It asks for the digits model's metadata, then classifies a handwritten 7 twice: tensors as
JSON, and tensors as raw bytes (the binary tensor extension).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import numpy as np
import tritonclient.http as httpclient

# A held-out handwritten 7 from scikit-learn's digits: 8x8 pixels, 0..16.
SEVEN = [
    [0, 0, 4, 15, 16, 13, 13, 10],
    [0, 0, 12, 13, 10, 15, 14, 2],
    [0, 2, 16, 6, 2, 14, 6, 0],
    [0, 1, 5, 0, 9, 11, 0, 0],
    [0, 0, 7, 12, 16, 14, 6, 0],
    [0, 0, 8, 15, 15, 11, 2, 0],
    [0, 0, 2, 16, 8, 0, 0, 0],
    [0, 0, 7, 15, 4, 0, 0, 0],
]


def main() -> None:
    url = urlsplit(os.environ.get("MODELWAY_URL", "http://127.0.0.1:8000"))
    headers = {"x-api-key": os.environ["MODELWAY_API_KEY"]}
    # tritonclient takes host:port (and ssl=True for https); a path (an API Gateway stage)
    # goes after the host: "abc.execute-api.eu-west-1.amazonaws.com/dev".
    client = httpclient.InferenceServerClient(
        url=url.netloc + url.path.rstrip("/"), ssl=url.scheme == "https"
    )
    print("live:", client.is_server_live())
    metadata = client.get_model_metadata("digits", headers=headers)
    print("inputs:", [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]])

    image = np.array(SEVEN, dtype=np.float32).reshape(1, 1, 8, 8)
    for binary in (False, True):
        tensor = httpclient.InferInput("input", list(image.shape), "FP32")
        tensor.set_data_from_numpy(image, binary_data=binary)
        outputs = [
            httpclient.InferRequestedOutput("label", binary_data=binary),
            httpclient.InferRequestedOutput("logits", binary_data=binary),
        ]
        result = client.infer("digits", [tensor], outputs=outputs, headers=headers)
        response = result.get_response()
        label = result.as_numpy("label")
        logits = result.as_numpy("logits")
        print(
            f"{'binary' if binary else 'JSON  '}: version {response['model_version']} "
            f"says {int(label[0])} (logit {float(logits[0].max()):.2f})"
        )
    client.close()


if __name__ == "__main__":
    main()
