"""Built-in regularizers components (one paper concept per module)."""
