"""Credit top-ups and corrections: the balance and its ledger entry change together."""

from __future__ import annotations

from typing import Any

from gateway.accounts.teams import ledger_entry
from gateway.errors import NotFound
from gateway.store.scripts import Scripts


async def add_credit(
    scripts: Scripts, team_id: str, amount_micros: int, note: str
) -> dict[str, Any]:
    """Add (or, negative, remove) credit; the ledger entry written, with the new balance."""
    result = await scripts.credit(team_id, amount_micros, note)
    if result is None:
        raise NotFound("Team not found")
    balance, entry_id = result
    return ledger_entry(
        entry_id,
        {
            "kind": "credit",
            "amount_micros": str(amount_micros),
            "balance_micros": str(balance),
            "note": note,
        },
    )
