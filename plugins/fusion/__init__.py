"""Built-in fusion components (one paper concept per module)."""
