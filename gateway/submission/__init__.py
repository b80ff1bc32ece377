"""Everything a submitted body goes through before it may cost money: policy, file checks,
validation, rewriting and pricing."""
