"""A relaxed policy applies at the next submit in a process that refused under the stricter one,
although only admitted submits meet the version check of the admission script."""

from __future__ import annotations

from typing import Any

import pytest

from tests.jobs import INPAINTING, KONTEXT, valid_body
from tests.limits.conftest import new_team
from tests.servers import Gateway

STRICT = {
    "endpoint": ({"allowed_endpoints": [INPAINTING]}, {}, 403),
    "num_images": ({"max_num_images": 1}, {"num_images": 2}, 422),
}


@pytest.mark.parametrize("owner", ["key", "team"])
@pytest.mark.parametrize("rule", sorted(STRICT))
def test_a_relaxed_policy_applies_at_once_where_the_strict_one_was_cached(
    fleet: list[Gateway], owner: str, rule: str
) -> None:
    strict, fields, refused_status = STRICT[rule]
    team = new_team(fleet[0], Gateway.FUNDS)
    token, created = fleet[0].new_key(team_id=team)
    record = f"/admin/v1/keys/{created['id']}" if owner == "key" else f"/admin/v1/teams/{team}"
    body: dict[str, Any] = valid_body(KONTEXT, **fields)
    with fleet[0].admin() as admin:
        admin.put(f"{record}/policy", json=strict).raise_for_status()
    with fleet[1].client(token) as process_a:
        refused = process_a.post(f"/{KONTEXT}", json=body)  # the strict policy is now cached
        assert refused.status_code == refused_status, refused.text

        with fleet[2].admin() as process_b:
            process_b.put(f"{record}/policy", json={}).raise_for_status()

        admitted = process_a.post(f"/{KONTEXT}", json=body)
        assert admitted.status_code == 200, admitted.text
        # A refusal that stands still comes out as itself (the rules are current).
        invalid = process_a.post(f"/{KONTEXT}", json={"prompt": 1})
        assert invalid.status_code == 422, invalid.text
