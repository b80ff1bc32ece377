"""Every page of the console beyond its overview and sign-in (``console``)."""

from __future__ import annotations

from gateway.http import (
    console_accounts,
    console_jobs,
    console_keys,
    console_prices,
    console_teams,
    console_usage,
)

ROUTES = [
    *console_teams.ROUTES,
    *console_prices.ROUTES,
    *console_keys.ROUTES,
    *console_usage.ROUTES,
    *console_jobs.ROUTES,
    *console_accounts.ROUTES,
]
