"""Built-in temporal components (one paper concept per module)."""
