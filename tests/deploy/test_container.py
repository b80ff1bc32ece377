"""The image and the compose file: pinned dependencies checked by hash and agreeing with
pyproject.toml, an unprivileged user, a health check on a real route, and only settings the
gateway (or the emulator) has. Docker itself is not needed: the files are read."""

from __future__ import annotations

import re
import shlex
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gateway.http.ops import ROUTES
from gateway.settings import EmulatorSettings, Settings
from tests.deploy.promql import DEPLOY

ROOT = DEPLOY.parent
LOCK = DEPLOY / "requirements.lock"
PINNED = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\$", re.MULTILINE)


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _locked() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in PINNED.findall(LOCK.read_text())}


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions of its last stage (the image), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    instructions = [
        (word.upper(), rest) for word, _, rest in (line.partition(" ") for line in lines)
    ]
    last_stage = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_stage:]


def _setting(name: str) -> bool:
    if name.startswith("GATEWAY_EMULATOR_"):
        return name.removeprefix("GATEWAY_EMULATOR_").lower() in EmulatorSettings.model_fields
    return name.removeprefix("GATEWAY_").lower() in Settings.model_fields


def test_the_lock_pins_every_dependency_as_pyproject_does_with_hashes() -> None:
    locked = _locked()
    dependencies = _project()["dependencies"]
    assert isinstance(dependencies, list)
    for line in dependencies:
        requirement = Requirement(line)
        [spec] = requirement.specifier
        assert spec.operator == "==", line
        assert locked.get(canonicalize_name(requirement.name)) == spec.version, line
    # Every locked file is checked: each pin is followed by its hashes.
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n", 2)[2])
    assert len(entries) == len(locked)
    for entry in entries:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]
    assert "--require-hashes -r /tmp/requirements.lock" in (DEPLOY / "Dockerfile").read_text()


def test_the_image_runs_the_gateway_unprivileged_with_a_working_health_check() -> None:
    instructions = _instructions()
    [user] = [rest for word, rest in instructions if word == "USER"]
    assert user.split(":")[0] not in {"root", "0"}
    [healthcheck] = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    paths = {route.path for route in ROUTES}
    [url] = re.findall(r"http://127\.0\.0\.1:8000(/\w+)", healthcheck)
    assert url in paths
    [cmd] = [rest for word, rest in instructions if word == "CMD"]
    scripts = _project()["scripts"]
    assert isinstance(scripts, dict)
    assert yaml.safe_load(cmd)[0] in scripts
    for word, rest in instructions:
        if word == "ENV":
            for assignment in shlex.split(rest):
                name = assignment.split("=", 1)[0]
                assert not name.startswith("GATEWAY_") or _setting(name), name


def test_compose_sets_only_settings_the_gateway_and_emulator_have() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    seen = 0
    for service in compose["services"].values():
        environment = service.get("environment", {})
        names = (
            environment
            if isinstance(environment, dict)
            else [item.split("=", 1)[0] for item in environment]
        )
        for name in names:
            assert name.startswith("GATEWAY_"), name
            assert _setting(name), name
            seen += 1
        assert service.get("build", {}).get("dockerfile", "deploy/Dockerfile") == (
            "deploy/Dockerfile"
        )
    assert seen
    # Docker's SIGKILL comes after the gateway's whole drain (default timeouts).
    defaults = Settings.model_fields
    drain = defaults["shutdown_timeout"].default + defaults["background_stop_timeout"].default
    grace = compose["services"]["gateway"]["stop_grace_period"]
    assert int(grace.removesuffix("s")) > drain
