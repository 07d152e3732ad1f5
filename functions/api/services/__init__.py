"""What the routes do, kept apart from HTTP: each service takes its clients and plain values."""
