"""Redis plumbing: the pool, the multiplexed connection, the Lua scripts and the one module
that names every key."""
