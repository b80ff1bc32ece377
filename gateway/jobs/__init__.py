"""A job's life: prepare and submit, one finisher for every path that sees its end, and the
reconciler."""
