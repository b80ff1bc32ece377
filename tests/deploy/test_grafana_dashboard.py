"""``deploy/grafana/fal-gateway.json``: an importable dashboard whose every query parses and
reads only metrics the gateway exports."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.promql import DEPLOY, check_parses, exported_series, series_named

DASHBOARD = DEPLOY / "grafana" / "fal-gateway.json"


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = dashboard["panels"]
    return [p for panel in panels for p in [panel, *panel.get("panels", [])] if "targets" in p]


def test_the_dashboard_is_importable_and_its_queries_read_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "fal-gateway"
    assert dashboard["title"]
    assert "id" not in dashboard  # an import gets its own id
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "instance"}
    exported = exported_series()
    exprs: dict[str, str] = {}
    read: set[str] = set()
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            named = series_named(expr)
            assert named, panel["title"]
            assert named <= exported, (panel["title"], named - exported)
            read |= named
            # Grafana's variables, as Grafana would substitute them.
            exprs[f"p{panel['id']}_{target['refId']}"] = expr.replace(
                "$__rate_interval", "5m"
            ).replace("$instance", ".*")
    check_parses(exprs)
    # Every family on the dashboard (a histogram through its buckets).
    families = {name.removesuffix("_bucket") for name in read}
    missing = {
        name
        for name in exported
        if not name.endswith(("_count", "_sum")) and name.removesuffix("_bucket") not in families
    }
    assert not missing
