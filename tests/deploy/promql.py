"""What the shipped PromQL (alert rules, dashboard) may name: the series the gateway exports,
read from its own registry (``gateway/telemetry/metrics.py``), and a check of the syntax by
Prometheus's own parser (``promtool``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from gateway.telemetry.metrics import Metrics

DEPLOY = Path(__file__).parents[2] / "deploy"
NAME = re.compile(r"\bgateway_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported_series() -> set[str]:
    """Every series name ``/metrics`` can show."""
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in SUFFIXES[family.type]
    }


def series_named(expr: str) -> set[str]:
    """The gateway series an expression reads."""
    return set(NAME.findall(expr))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed (apt-get install prometheus; `make test` does it)")
    return found


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=60
    )


def check_parses(exprs: dict[str, str]) -> None:
    """Fail unless Prometheus parses every expression (as recording rules of a scratch file)."""
    rules = [{"record": f"check:{name}", "expr": expr} for name, expr in exprs.items()]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}))
        checked = run_promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
