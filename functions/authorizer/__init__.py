"""The API Gateway Lambda REQUEST authorizer: validates ``x-api-key`` against the registry."""
