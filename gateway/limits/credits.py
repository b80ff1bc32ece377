"""Credit top-ups and corrections: the balance and its ledger entry change together."""

from __future__ import annotations

from typing import Any

from gateway.accounts.teams import Team, ledger_entry
from gateway.errors import NotFound, RequestValidationFailed
from gateway.policy.limits import MAX_MICROS
from gateway.store.scripts import BalanceOutOfRange, Scripts


async def add_credit(scripts: Scripts, team: Team, amount_micros: int, note: str) -> dict[str, Any]:
    """Add (or, negative, remove) credit; the ledger entry written, with the new balance.

    422 when the balance would pass ``MAX_MICROS`` either way (a change back towards it is
    allowed); checked and written atomically by ``credit.lua``."""
    try:
        result = await scripts.credit(team.id, amount_micros, note, MAX_MICROS)
    except BalanceOutOfRange as exc:
        msg = f"the balance would be {exc.balance}; it must stay within -{MAX_MICROS}..{MAX_MICROS}"
        raise RequestValidationFailed(
            [{"loc": ["body", "amount_micros"], "msg": msg, "type": "value_error"}]
        ) from exc
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
