"""What a key and its team may do: the policy model, its checks and its per-process cache."""
