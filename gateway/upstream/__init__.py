"""fal as seen from the gateway: the HTTP client and the pool of upstream keys."""

from gateway.upstream.client import FalUpstream

__all__ = ["FalUpstream"]
