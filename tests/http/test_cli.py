"""``fal-gateway keys ...``: the admin API from the command line."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.servers import Gateway

pytestmark = pytest.mark.on_cluster


def _cli(
    gateway: Gateway, *args: str, token: str = Gateway.ADMIN_TOKEN
) -> subprocess.CompletedProcess[str]:
    return gateway.cli("keys", *args, token=token)


def test_create_list_show_revoke_from_the_cli(gateway: Gateway) -> None:
    gateway.ensure_team("cli-team")
    created = _cli(
        gateway, "create", "--name", "from cli", "--team", "cli-team", "--expires-in", "7", "--json"
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["secret"].startswith("fgw_cli-team_")
    assert key["expires_at"] is not None

    table = _cli(gateway, "list")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "TEAM_ID", "STATUS", "CREATED_AT", "EXPIRES_AT"]
    assert any(row.startswith(key["id"]) and "from cli" in row for row in rows)
    assert key["secret"] not in table.stdout

    shown = json.loads(_cli(gateway, "show", key["id"], "--json").stdout)
    assert shown["name"] == "from cli"
    assert "secret" not in shown

    revoked = _cli(gateway, "revoke", key["id"])
    assert revoked.returncode == 0
    assert "revoked" in revoked.stdout
    with gateway.client(key["secret"]) as client:
        assert client.get("/fal-ai/flux-lora/requests/x/status").status_code == 401


def test_create_prints_the_secret_once_in_table_mode(gateway: Gateway) -> None:
    gateway.ensure_team()  # funded, for the tests after this one that use the default team
    created = _cli(gateway, "create", "--name", "table")
    assert created.returncode == 0
    assert "Secret (shown only now): fgw_default_" in created.stdout


def test_cli_errors_are_clear(gateway: Gateway) -> None:
    wrong = _cli(gateway, "list", token="not-the-token")
    assert wrong.returncode == 1
    assert "401" in wrong.stderr
    missing = _cli(gateway, "show", "nosuchkey")
    assert missing.returncode == 1
    assert "Key not found" in missing.stderr


def test_a_teams_sync_hangup_rule_from_the_cli(gateway: Gateway) -> None:
    created = gateway.cli(
        "teams", "create", "--id", "hangup-cli", "--name", "h", "--sync-hangup", "refund", "--json"
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["sync_hangup"] == "refund"
    changed = gateway.cli("teams", "limits", "hangup-cli", "--sync-hangup", "charge", "--json")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["sync_hangup"] == "charge"
    wrong = gateway.cli("teams", "limits", "hangup-cli", "--sync-hangup", "sometimes")
    assert wrong.returncode == 1
    assert "sync_hangup" in wrong.stderr
