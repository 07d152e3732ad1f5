"""Call the local model server the way the router (and SageMaker) does: boto3's
``sagemaker-runtime`` ``invoke_endpoint`` with ``endpoint_url`` pointing at it.

The model server answers SageMaker's runtime path for every version in the local registry
(endpoint ``modelway-local-<model>``, one production variant per version, ``v<N>``). There is
no key here: this is the hop behind the router, as on AWS (where IAM guards it). ::

    MODELWAY_SERVING_URL=http://127.0.0.1:8080 python examples/sagemaker_runtime.py
"""

from __future__ import annotations

import json
import os

import boto3

# A held-out handwritten 7 (as in oip_client.py), 64 pixels row-major.
SEVEN = [0, 0, 4, 15, 16, 13, 13, 10, 0, 0, 12, 13, 10, 15, 14, 2, 0, 2, 16, 6, 2, 14, 6, 0]
SEVEN += [0, 1, 5, 0, 9, 11, 0, 0, 0, 0, 7, 12, 16, 14, 6, 0, 0, 0, 8, 15, 15, 11, 2, 0]
SEVEN += [0, 0, 2, 16, 8, 0, 0, 0, 0, 0, 7, 15, 4, 0, 0, 0]


def main() -> None:
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=os.environ.get("MODELWAY_SERVING_URL", "http://127.0.0.1:8080"),
        region_name="us-east-1",
        # The local model server checks no signature; botocore still wants credentials.
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    body = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [1, 1, 8, 8],
                "data": SEVEN,
            }
        ],
        "outputs": [{"name": "label"}],
    }
    response = runtime.invoke_endpoint(
        EndpointName=os.environ.get("MODELWAY_ENDPOINT", "modelway-local-digits"),
        TargetVariant="v1",
        ContentType="application/json",
        Body=json.dumps(body),
    )
    print("variant:", response["InvokedProductionVariant"])
    print(json.loads(response["Body"].read()))


if __name__ == "__main__":
    main()
