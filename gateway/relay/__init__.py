"""The webhook relay: fal's completions in, verified; callers' deliveries out, signed, retried."""
