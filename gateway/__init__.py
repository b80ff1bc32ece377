"""fal gateway: an async HTTP gateway for fal.ai's FLUX image-editing endpoints."""
