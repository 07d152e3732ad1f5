"""Making versions servable: on AWS a SageMaker Model per version and one endpoint per model
whose production variants (``v{N}``) are the versions its aliases need; locally nothing to do
(the local model server serves every version on disk).

``base`` holds the ``Deployer`` protocol and the no-op, ``plan`` decides which versions an
endpoint carries, ``sagemaker`` talks to SageMaker, ``autoscaling`` gives each variant its
Application Auto Scaling target and policy, ``rollout`` runs publish and alias moves through a
deployer and the registry in the right order.
"""
