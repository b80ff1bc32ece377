"""The endpoint catalog: input models and output-size rules, shared by the gateway and emulator."""

from gateway.catalog.common import ImageEditInput, Size
from gateway.catalog.endpoints import APP_IDS, CATALOG, Endpoint, find_endpoint

__all__ = ["APP_IDS", "CATALOG", "Endpoint", "ImageEditInput", "Size", "find_endpoint"]
