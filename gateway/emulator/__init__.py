"""A local stand-in for fal's queue, sync and storage APIs: see ``app.create_emulator_app``."""

from gateway.emulator.app import create_emulator_app

__all__ = ["create_emulator_app"]
