"""Per-key and per-team policies: the stricter wins, enforced before anything reaches fal."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest

from gateway.policy.model import Policy, effective
from tests.jobs import GENERAL_INPAINTING, IMAGE_TO_IMAGE, INPAINTING, KONTEXT, valid_body
from tests.servers import Emulator, Gateway, UpstreamLog


def test_the_stricter_of_team_and_key_wins() -> None:
    team = Policy(
        allowed_endpoints=[INPAINTING, KONTEXT],
        max_num_images=3,
        lora_path_patterns=["https://loras.example/*"],
        max_megapixels=2.0,
        defaults={"num_inference_steps": 20, "guidance_scale": 3.0},
    )
    key = Policy(
        allowed_endpoints=[KONTEXT, IMAGE_TO_IMAGE],
        max_num_images=4,
        max_loras=1,
        lora_path_patterns=["*/style-*"],
        force_safety_checker=True,
        defaults={"num_inference_steps": 12},
    )
    combined = effective(team, key)
    assert combined.allowed_endpoints == frozenset({KONTEXT})
    assert combined.max_num_images == 3
    assert combined.max_loras == 1
    assert combined.lora_pattern_sets == (("https://loras.example/*",), ("*/style-*",))
    assert combined.max_megapixels == 2.0
    assert combined.force_safety_checker
    assert combined.defaults == {"num_inference_steps": 12, "guidance_scale": 3.0}
    assert effective(Policy(), Policy()).allowed_endpoints is None


def _team(gateway: Gateway) -> str:
    """A new funded team."""
    team_id = f"team-{os.urandom(4).hex()}"
    gateway.ensure_team(team_id)
    return team_id


def _set_team_policy(gateway: Gateway, team_id: str, policy: dict[str, Any]) -> None:
    with gateway.admin() as admin:
        response = admin.put(f"/admin/v1/teams/{team_id}/policy", json=policy)
    assert response.status_code == 200, response.text


def _forwarded(
    emulator: Emulator, client: httpx.Client, endpoint: str, body: dict[str, Any]
) -> tuple[httpx.Response, Any]:
    upstream = UpstreamLog(emulator)
    response = client.post(f"/{endpoint}", json=body)
    sent = upstream.submits()
    return response, json.loads(str(sent[0]["body"])) if sent else None


def test_endpoint_not_allowed_is_403(gateway: Gateway, emulator: Emulator) -> None:
    token, _ = gateway.new_key(policy={"allowed_endpoints": [KONTEXT]})
    with gateway.client(token) as client:
        refused, sent = _forwarded(emulator, client, INPAINTING, valid_body(INPAINTING))
        assert refused.status_code == 403
        assert refused.json() == {
            "detail": f"This key may not use {INPAINTING}",
            "error_type": "endpoint_not_allowed",
        }
        assert sent is None
        assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 200


def test_team_policy_applies_to_all_its_keys(gateway: Gateway, emulator: Emulator) -> None:
    team = _team(gateway)
    _set_team_policy(gateway, team, {"allowed_endpoints": [IMAGE_TO_IMAGE]})
    token, _ = gateway.new_key(team_id=team)
    with gateway.client(token) as client:
        assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 403
        assert client.post(f"/{IMAGE_TO_IMAGE}", json=valid_body(IMAGE_TO_IMAGE)).status_code == 200


@pytest.mark.parametrize(
    ("policy", "body", "loc"),
    [
        ({"max_num_images": 2}, valid_body(INPAINTING, num_images=3), ["body", "num_images"]),
        (
            {"max_loras": 1},
            valid_body(INPAINTING, loras=[{"path": "https://l/a"}, {"path": "https://l/b"}]),
            ["body", "loras"],
        ),
        (
            {"lora_path_patterns": ["https://loras.example/*"]},
            valid_body(
                INPAINTING, loras=[{"path": "https://loras.example/ok"}, {"path": "https://evil/x"}]
            ),
            ["body", "loras", 1, "path"],
        ),
        (
            {"max_megapixels": 0.5},
            valid_body(INPAINTING, image_size="square_hd"),
            ["body", "image_size"],
        ),
        (
            {"max_megapixels": 4},
            valid_body(INPAINTING, image_url="https://images.example/in.png"),
            ["body", "image_url"],
        ),
    ],
)
def test_plan_limits_are_422_naming_the_field(
    gateway: Gateway,
    emulator: Emulator,
    policy: dict[str, Any],
    body: dict[str, Any],
    loc: list[Any],
) -> None:
    token, _ = gateway.new_key(policy=policy)
    with gateway.client(token) as client:
        refused, sent = _forwarded(emulator, client, INPAINTING, body)
    assert refused.status_code == 422
    assert sent is None
    assert [e["loc"] for e in refused.json()["detail"] if e["type"] == "policy_violation"] == [loc]


def test_control_loras_count_towards_the_lora_limit(gateway: Gateway, emulator: Emulator) -> None:
    token, _ = gateway.new_key(policy={"max_loras": 1})
    body = valid_body(
        GENERAL_INPAINTING,
        loras=[{"path": "https://l/a"}],
        control_loras=[{"path": "https://l/c", "control_image_url": "https://i/c.png"}],
    )
    with gateway.client(token) as client:
        refused, sent = _forwarded(emulator, client, GENERAL_INPAINTING, body)
    assert refused.status_code == 422
    assert sent is None


_ALLOWED = "https://weights.example/"


@pytest.mark.parametrize(
    ("field", "item", "name"),
    [
        ("control_loras", {"control_image_url": "https://i/c.png"}, "path"),
        ("controlnets", {"control_image_url": "https://i/c.png"}, "path"),
        (
            "controlnet_unions",
            {"controls": [{"control_image_url": "https://i/c.png", "control_mode": "canny"}]},
            "path",
        ),
        (
            "ip_adapters",
            {
                "image_encoder_path": f"{_ALLOWED}encoder",
                "image_url": "https://i/a.png",
                "scale": 1,
            },
            "path",
        ),
        (
            "ip_adapters",
            {"path": f"{_ALLOWED}adapter", "image_url": "https://i/a.png", "scale": 1},
            "image_encoder_path",
        ),
        (
            "easycontrols",
            {"image_url": "https://i/e.png", "image_control_type": "spatial"},
            "control_method_url",
        ),
    ],
)
def test_lora_path_patterns_cover_every_weights_path(
    gateway: Gateway,
    emulator: Emulator,
    field: str,
    item: dict[str, Any],
    name: str,
) -> None:
    token, _ = gateway.new_key(policy={"lora_path_patterns": [f"{_ALLOWED}*"]})
    body = valid_body(GENERAL_INPAINTING)
    outside = {**body, field: [{**item, name: "https://evil.example/weights"}]}
    inside = {**body, field: [{**item, name: f"{_ALLOWED}ok"}]}
    with gateway.client(token) as client:
        refused, sent = _forwarded(emulator, client, GENERAL_INPAINTING, outside)
        accepted, _ = _forwarded(emulator, client, GENERAL_INPAINTING, inside)
    assert refused.status_code == 422, refused.text
    assert sent is None
    assert [e["loc"] for e in refused.json()["detail"] if e["type"] == "policy_violation"] == [
        ["body", field, 0, name]
    ]
    assert accepted.status_code == 200, accepted.text


def test_within_limits_passes(gateway: Gateway, emulator: Emulator) -> None:
    policy = {"max_num_images": 2, "max_megapixels": 0.3, "lora_path_patterns": ["https://l/*"]}
    token, _ = gateway.new_key(policy=policy)
    body = valid_body(
        INPAINTING, num_images=2, image_size="square", loras=[{"path": "https://l/a"}]
    )
    with gateway.client(token) as client:
        accepted, sent = _forwarded(emulator, client, INPAINTING, body)
    assert accepted.status_code == 200, accepted.text
    assert sent["num_images"] == 2


def test_defaults_fill_gaps_and_the_key_beats_the_team(
    gateway: Gateway, emulator: Emulator
) -> None:
    team = _team(gateway)
    _set_team_policy(
        gateway, team, {"defaults": {"num_inference_steps": 20, "guidance_scale": 2.0}}
    )
    token, _ = gateway.new_key(team_id=team, policy={"defaults": {"num_inference_steps": 12}})
    with gateway.client(token) as client:
        _, defaulted = _forwarded(emulator, client, INPAINTING, valid_body(INPAINTING))
        _, explicit = _forwarded(
            emulator, client, INPAINTING, valid_body(INPAINTING, num_inference_steps=40)
        )
    assert (defaulted["num_inference_steps"], defaulted["guidance_scale"]) == (12, 2.0)
    assert explicit["num_inference_steps"] == 40


def test_forced_safety_checker_overrides_the_caller(gateway: Gateway, emulator: Emulator) -> None:
    token, _ = gateway.new_key(policy={"force_safety_checker": True})
    with gateway.client(token) as client:
        _, sent = _forwarded(
            emulator, client, KONTEXT, valid_body(KONTEXT, enable_safety_checker=False)
        )
    assert sent["enable_safety_checker"] is True


@pytest.mark.parametrize(
    "policy",
    [
        {"allowed_endpoints": ["fal-ai/flux-pro"]},
        {"max_num_images": 0},
        {"defaults": {"not_a_field": 1}},
        {"max_megapixels": -1},
        {"surprise": True},
    ],
)
def test_bad_policies_are_refused_by_the_admin_api(
    gateway: Gateway, policy: dict[str, Any]
) -> None:
    with gateway.admin() as admin:
        assert admin.post("/admin/v1/keys", json={"name": "x", "policy": policy}).status_code == 422
        assert admin.put("/admin/v1/teams/some-team/policy", json=policy).status_code == 422


def test_policies_are_shown_and_replaced(gateway: Gateway) -> None:
    _, created = gateway.new_key(policy={"max_num_images": 2})
    assert created["policy"] == {"max_num_images": 2}
    with gateway.admin() as admin:
        replaced = admin.put(f"/admin/v1/keys/{created['id']}/policy", json={"max_loras": 0}).json()
        assert replaced["policy"] == {"max_loras": 0}
        assert admin.get(f"/admin/v1/teams/{_team(gateway)}").json()["policy"] == {}


def test_policy_from_the_cli(gateway: Gateway, emulator: Emulator) -> None:
    _, created = gateway.new_key()
    team = _team(gateway)
    cli = gateway.cli

    key_policy = cli(
        "keys",
        "policy",
        str(created["id"]),
        "--allow-endpoint",
        KONTEXT,
        "--max-images",
        "1",
        "--lora-pattern",
        "https://l/*",
        "--default",
        "num_inference_steps=15",
        "--json",
    )
    assert key_policy.returncode == 0, key_policy.stderr
    assert json.loads(key_policy.stdout)["policy"] == {
        "allowed_endpoints": [KONTEXT],
        "max_num_images": 1,
        "lora_path_patterns": ["https://l/*"],
        "defaults": {"num_inference_steps": 15},
    }
    team_policy = cli("teams", "policy", team, "--force-safety-checker", "--max-megapixels", "1.5")
    assert team_policy.returncode == 0, team_policy.stderr
    shown = json.loads(cli("teams", "show", team, "--json").stdout)
    assert shown["id"] == team
    assert shown["policy"] == {"max_megapixels": 1.5, "force_safety_checker": True}
    assert cli("keys", "policy", str(created["id"])).returncode == 2  # no options, no --clear
    cleared = cli("keys", "policy", str(created["id"]), "--clear", "--json")
    assert json.loads(cleared.stdout)["policy"] == {}
