"""Generic HTTP layer: one FastAPI app factory serves any trajgym env."""
