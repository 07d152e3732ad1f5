"""The stacks of the modelway CDK app."""
