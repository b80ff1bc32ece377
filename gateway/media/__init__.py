"""Media files as fal accepts them."""
