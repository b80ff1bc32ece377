"""Credit top-ups and corrections: the balance and its ledger entry change together."""

from __future__ import annotations

from typing import Any

from gateway.accounts.teams import ledger_entry
from gateway.errors import NotFound
from gateway.store import redis_keys
from gateway.store.scripts import Scripts


async def add_credit(
    scripts: Scripts, team_id: str, amount_micros: int, note: str
) -> dict[str, Any]:
    """Add (or, negative, remove) credit; the ledger entry written, with the new balance."""
    result = await scripts.run(
        "credit",
        keys=[redis_keys.team_record(team_id), redis_keys.ledger(team_id)],
        args=[amount_micros, note],
    )
    if result[0] == "missing":
        raise NotFound("Team not found")
    balance, entry_id = int(result[0]), str(result[1])
    return ledger_entry(
        entry_id,
        {
            "kind": "credit",
            "amount_micros": str(amount_micros),
            "balance_micros": str(balance),
            "note": note,
        },
    )
