"""Prometheus metrics and their ASGI middleware."""
