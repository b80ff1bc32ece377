"""How many of something each key has under way in this process, with a cap (429 beyond).

For work that happens before admission or outlives it (reading input headers, open status
streams), so that one key cannot hold what every other key needs.
"""

from __future__ import annotations

from collections import Counter

from gateway.errors import RateLimited


class PerKeyInFlight:
    def __init__(self, limit: int, refusal: str, error_type: str) -> None:
        self._limit = limit
        self._refusal = refusal
        self._error_type = error_type
        self._held: Counter[str] = Counter()

    def take(self, key_id: str) -> None:
        """Count one more for ``key_id``, or raise 429 when it holds its limit already."""
        if self._held[key_id] >= self._limit:
            raise RateLimited(
                self._refusal, error_type=self._error_type, headers={"Retry-After": "1"}
            )
        self._held[key_id] += 1

    def give_back(self, key_id: str) -> None:
        """One of ``key_id``'s ended."""
        self._held[key_id] -= 1
        if self._held[key_id] <= 0:
            del self._held[key_id]
