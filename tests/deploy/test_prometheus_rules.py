"""``deploy/prometheus/alerts.yml``: valid rules (``promtool check rules``), each alert shown
firing and silent by ``alerts_test.yml`` (``promtool test rules``), over metrics the gateway
really exports, each with a runbook section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.promql import DEPLOY, exported_series, run_promtool, series_named

RULES = DEPLOY / "prometheus" / "alerts.yml"
RUNBOOK = Path(__file__).parents[2] / "docs" / "operations.md"


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_rules_are_valid() -> None:
    checked = run_promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout


def test_every_alert_fires_and_stays_silent_as_its_unit_tests_say() -> None:
    tested = run_promtool("test", "rules", "alerts_test.yml", cwd=RULES.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load((RULES.parent / "alerts_test.yml").read_text())["tests"]
    covered = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    names = {alert["alert"] for alert in _alerts()}
    assert covered == names
    assert firing == names


def test_the_alerts_read_only_metrics_the_gateway_exports() -> None:
    exported = exported_series()
    for alert in _alerts():
        named = series_named(alert["expr"])
        assert named, alert["alert"]
        assert named <= exported, (alert["alert"], named - exported)


def test_each_alert_has_its_runbook_section() -> None:
    headings = {
        match.lower() for match in re.findall(r"^### (\S+)$", RUNBOOK.read_text(), re.MULTILINE)
    }
    for alert in _alerts():
        assert alert["alert"].lower() in headings, alert["alert"]
        assert alert["annotations"]["runbook"] == f"docs/operations.md#{alert['alert'].lower()}"
