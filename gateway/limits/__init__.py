"""Quotas and metering: Lua scripts for admission and settlement, and their Python wrappers."""
