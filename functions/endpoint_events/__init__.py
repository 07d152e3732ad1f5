"""The endpoint-events Lambda: when SageMaker reports one of this environment's endpoints
``IN_SERVICE`` (EventBridge), gives every production variant its autoscaling.

A variant added by an ``UpdateEndpoint`` can be registered with Application Auto Scaling only
once the endpoint is ``InService``; the router cannot wait minutes for that, so this function
does the registration when SageMaker says the update is done.
"""
