"""HTTP routes, one module per concern; each handler only translates HTTP to a service call."""
