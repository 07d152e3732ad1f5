"""The building blocks of a modelway environment, one module per concern."""
