"""The admin API for keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.servers import Gateway

pytestmark = pytest.mark.on_cluster


def test_create_show_list_revoke(gateway: Gateway) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    gateway.ensure_team("acme")
    with gateway.admin() as admin:
        created = admin.post(
            "/admin/v1/keys",
            json={"name": "ci robot", "team_id": "acme", "expires_at": expires.isoformat()},
        )
        assert created.status_code == 201
        key = created.json()
        assert key["secret"].startswith("fgw_acme_")
        assert key["name"] == "ci robot"
        assert key["team_id"] == "acme"
        assert key["status"] == "active"
        assert key["expires_at"] == expires.isoformat().replace("+00:00", "Z")

        shown = admin.get(f"/admin/v1/keys/{key['id']}").json()
        listed = admin.get("/admin/v1/keys").json()["keys"]
        assert key["webhook_secret"].startswith("whsec_")
        assert "secret" not in shown
        assert "webhook_secret" not in shown
        assert shown == {k: v for k, v in key.items() if k not in ("secret", "webhook_secret")}
        assert shown in listed
        assert all("secret" not in k and "secret_hash" not in k for k in listed)
        assert key["webhook_secret"] not in admin.get("/admin/v1/keys").text

        revoked = admin.post(f"/admin/v1/keys/{key['id']}/revoke").json()
        assert revoked["status"] == "revoked"
        assert revoked["revoked_at"] is not None
        again = admin.post(f"/admin/v1/keys/{key['id']}/revoke").json()
        assert again["revoked_at"] == revoked["revoked_at"]


def test_secret_is_shown_once_and_works(gateway: Gateway) -> None:
    token, created = gateway.new_key()
    with gateway.client(token) as client:
        assert client.get("/fal-ai/flux-lora/requests/none/status").status_code == 404  # authed
    with gateway.admin() as admin:
        assert token not in admin.get(f"/admin/v1/keys/{created['id']}").text
        assert token not in admin.get("/admin/v1/keys").text


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "Key admin-test-token", "Bearer", "admin-test-token"]
)
def test_admin_needs_the_admin_token(gateway: Gateway, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in (
        ("GET", "/admin/v1/keys"),
        ("POST", "/admin/v1/keys"),
        ("GET", "/admin/v1/keys/x"),
    ):
        response = httpx.request(
            method, f"{gateway.url}{path}", headers=headers, json={"name": "x"}
        )
        assert response.status_code == 401
        assert response.json()["error_type"] == "unauthorized"


def test_gateway_keys_are_not_admin_tokens(gateway: Gateway) -> None:
    token, _ = gateway.new_key()
    response = httpx.get(
        f"{gateway.url}/admin/v1/keys", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "name"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "x", "team_id": "Bad_Team"}, ["body", "team_id"]),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, ["body", "expires_at"]),
        ({"name": "x", "expires_at": "2031-01-01T00:00:00"}, ["body", "expires_at"]),
        ({"name": "x", "colour": "red"}, ["body", "colour"]),
    ],
)
def test_bad_key_specs_are_422(gateway: Gateway, body: dict[str, object], loc: list[str]) -> None:
    with gateway.admin() as admin:
        before = len(admin.get("/admin/v1/keys").json()["keys"])
        response = admin.post("/admin/v1/keys", json=body)
        assert response.status_code == 422
        assert loc in [item["loc"] for item in response.json()["detail"]]
        assert len(admin.get("/admin/v1/keys").json()["keys"]) == before


def test_keys_need_an_existing_team(gateway: Gateway) -> None:
    with gateway.admin() as admin:
        response = admin.post("/admin/v1/keys", json={"name": "x", "team_id": "no-such-team"})
        assert response.status_code == 404
        assert response.json()["detail"] == "Team not found"


def test_unknown_key_is_404(gateway: Gateway) -> None:
    with gateway.admin() as admin:
        assert admin.get("/admin/v1/keys/nosuchkey").status_code == 404
        assert admin.post("/admin/v1/keys/nosuchkey/revoke").status_code == 404
