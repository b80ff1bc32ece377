"""A team's alert settings where its caps are edited: the low-balance threshold and near-cap
percentage (admin ``PATCH``, ``teams limits``, the console's limits form), and its own alert
webhook, whose secret is shown once (admin ``PUT``/``DELETE``, ``teams alert-webhook``, the
console's team page)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.servers import Gateway
from tests.web.console import signed_in_client

pytestmark = pytest.mark.on_cluster


def _team(gateway: Gateway) -> str:
    team_id = f"alerting-{os.urandom(3).hex()}"
    gateway.ensure_team(team_id)
    return team_id


def _shown(gateway: Gateway, team_id: str) -> dict[str, Any]:
    with gateway.admin() as admin:
        team: dict[str, Any] = admin.get(f"/admin/v1/teams/{team_id}").json()
    return team


def test_thresholds_through_the_admin_api(gateway: Gateway) -> None:
    team_id = _team(gateway)
    with gateway.admin() as admin:
        changes = {"low_balance_micros": 2_500_000, "near_cap_percent": 80}
        changed = admin.patch(f"/admin/v1/teams/{team_id}", json=changes)
    assert changed.status_code == 200, changed.text
    assert changed.json()["limits"]["low_balance_micros"] == 2_500_000
    assert changed.json()["limits"]["near_cap_percent"] == 80
    with gateway.admin() as admin:
        admin.patch(f"/admin/v1/teams/{team_id}", json={"low_balance_micros": None})
    assert _shown(gateway, team_id)["limits"]["low_balance_micros"] is None


def test_the_teams_alert_webhook_secret_is_shown_once(gateway: Gateway) -> None:
    team_id = _team(gateway)
    path = f"/admin/v1/teams/{team_id}/alert-webhook"
    with gateway.admin() as admin:
        answer = admin.put(path, json={"url": "https://customer.example.com/low"})
        assert answer.status_code == 200, answer.text
        secret = answer.json()["secret"]
        assert secret.startswith("whsec_")
        again = admin.put(path, json={"url": "https://customer.example.com/low"}).json()
        assert again["secret"] != secret  # a new secret each time
        shown = admin.get(f"/admin/v1/teams/{team_id}").text
        assert "customer.example.com/low" in shown
        assert secret not in shown
        assert again["secret"] not in shown
        bad = admin.put(path, json={"url": "ftp://customer.example.com/low"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "url"]
        assert "url must use https" in bad.json()["detail"][0]["msg"]
        assert admin.put(path, json={"url": ""}).status_code == 422
        assert (
            admin.put(
                f"/admin/v1/teams/{team_id}-none/alert-webhook", json={"url": "https://x.example"}
            ).status_code
            == 404
        )
        removed = admin.delete(path)
    assert removed.status_code == 200
    assert removed.json()["alert_webhook_url"] is None


def test_alert_settings_from_the_cli(gateway: Gateway) -> None:
    team_id = _team(gateway)
    changed = gateway.cli(
        "teams", "limits", team_id, "--low-balance", "5000", "--near-cap-percent", "90", "--json"
    )
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["limits"]["low_balance_micros"] == 5000
    hooked = gateway.cli("teams", "alert-webhook", team_id, "https://c.example.com/hook")
    assert hooked.returncode == 0, hooked.stderr
    assert "secret: whsec_" in hooked.stdout
    assert _shown(gateway, team_id)["alert_webhook_url"] == "https://c.example.com/hook"
    removed = gateway.cli("teams", "alert-webhook", team_id, "--remove", "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["alert_webhook_url"] is None
    assert gateway.cli("teams", "alert-webhook", team_id).returncode != 0


def test_alert_settings_from_the_console(gateway: Gateway) -> None:
    team_id = _team(gateway)
    with signed_in_client(gateway) as (client, csrf):
        page = client.get(f"/console/teams/{team_id}").text
        assert "Low balance (currency units)" in page
        assert "Near cap percent" in page
        saved = client.post(
            f"/console/teams/{team_id}/limits",
            data={"csrf": csrf, "low_balance_micros": "2.5", "near_cap_percent": "75"},
        )
        assert saved.status_code == 303, saved.text  # back to the team page
        hooked = client.post(
            f"/console/teams/{team_id}/alert-webhook",
            data={"csrf": csrf, "url": "https://console.example.com/low"},
        )
        assert hooked.status_code == 200
        assert "whsec_" in hooked.text  # shown now, and never again
        team_page = client.get(f"/console/teams/{team_id}").text
        assert "console.example.com/low" in team_page
        assert "whsec_" not in team_page
        refused = client.post(
            f"/console/teams/{team_id}/alert-webhook", data={"csrf": csrf, "url": "nope"}
        )
        assert 'role="alert"' in refused.text
        removed = client.post(
            f"/console/teams/{team_id}/alert-webhook", data={"csrf": csrf, "remove": "1"}
        )
        assert removed.status_code == 303
    team = _shown(gateway, team_id)
    assert team["limits"]["low_balance_micros"] == 2_500_000
    assert team["limits"]["near_cap_percent"] == 75
    assert team["alert_webhook_url"] is None
