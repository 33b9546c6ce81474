"""Built-in spatial components (one paper concept per module)."""
