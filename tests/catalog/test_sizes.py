"""Output-size rules of the catalog (pure functions)."""

from __future__ import annotations

import pytest

from gateway.catalog import CATALOG, Size
from gateway.catalog.flux_kontext import KONTEXT_RESOLUTIONS, kontext_output_size
from gateway.media.images import MAX_SIDE


def test_every_endpoint_has_an_app_scope() -> None:
    assert {e.app_id for e in CATALOG.values()} == {
        "fal-ai/flux-lora",
        "fal-ai/flux-general",
        "fal-ai/flux-kontext-lora",
    }


@pytest.mark.parametrize(
    ("mode", "source", "expected"),
    [
        ("match_input", Size(1000, 601), Size(1008, 608)),
        ("match_input", Size(7, 5), Size(16, 16)),
        ("match_input", Size(MAX_SIDE, 100), Size(14128, 96)),
        ("auto", Size(1000, 1000), Size(1024, 1024)),
        ("auto", Size(400, 1000), Size(672, 1568)),
        ("16:9", Size(10, 10), Size(1360, 768)),
        ("9:16", Size(10, 10), Size(768, 1360)),
        ("21:9", Size(10, 10), Size(1568, 672)),
    ],
)
def test_kontext_resolution_modes(mode: str, source: Size, expected: Size) -> None:
    assert kontext_output_size(mode, source) == expected  # type: ignore[arg-type]


def test_auto_always_picks_a_trained_resolution() -> None:
    for width in range(100, 3000, 97):
        assert kontext_output_size("auto", Size(width, 1000)) in KONTEXT_RESOLUTIONS
