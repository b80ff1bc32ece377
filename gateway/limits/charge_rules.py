"""What a job costs when it ran and produced nothing, per team.

A team's ``failed_job`` rule prices a job fal accepted that ended in an error, its
``cancelled_running`` rule a job its caller cancelled while it ran that ended without output
(``sync_hangup``, in ``jobs.submit``, prices a sync run whose caller hung up). Each is one of:

- ``charge_billable_units`` (the default): the list price of what fal billed for the job, the
  units in its ``x-fal-billable-units`` answer times the endpoint's price per unit (a megapixel
  here); nothing when fal billed nothing. This follows fal's bill exactly: fal charges Model API
  calls only for outputs ("you pay only for successful outputs, and you are never charged for
  server errors or time spent waiting in the queue", docs.fal.ai model-apis/pricing), never for
  a 5xx, but a 422 "may still be charged if a runner spent GPU time processing the request
  before the error was detected" (docs.fal.ai FAQ); a request cancelled in the queue is never
  processed, and a running one gets a cancellation signal its app acts on (docs.fal.ai
  handle-cancellations), so whether fal bills it shows only in its units.
- ``refund``: nothing; the reseller bears whatever fal billed.
- ``charge_estimate``: the job's reservation, as if it had produced what it asked for.

The team's price multiplier applies on top, and no job is charged more than its reservation
(``finish.lua``). fal-protocol.md has no word on failed or cancelled jobs' billing; the sources
above are fal's own documentation.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from gateway.catalog import find_endpoint
from gateway.limits.settlement import USE_ESTIMATE

REFUND = "refund"
CHARGE_BILLABLE_UNITS = "charge_billable_units"
CHARGE_ESTIMATE = "charge_estimate"


def units_cost_micros(endpoint_id: str, units: str) -> int:
    """fal's list price of ``units`` (a plain decimal; ``""``: none) of the endpoint's unit,
    rounded up to a micro-unit; 0 for an endpoint the catalog does not know."""
    endpoint = find_endpoint(endpoint_id)
    if endpoint is None or not units:
        return 0
    cost = Decimal(units) * endpoint.price_per_megapixel_micros
    return int(cost.to_integral_value(ROUND_CEILING))


def list_cost(rule: str, endpoint_id: str, billable_units: str) -> int:
    """The list-price cost of a job that ran and produced nothing, under ``rule``
    (``USE_ESTIMATE``: its reservation)."""
    if rule == CHARGE_ESTIMATE:
        return USE_ESTIMATE
    if rule == CHARGE_BILLABLE_UNITS:
        return units_cost_micros(endpoint_id, billable_units)
    return 0
