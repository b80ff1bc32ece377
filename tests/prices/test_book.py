"""Which price applies when: the table's latest in effect, else the catalog's; a team's own."""

from __future__ import annotations

from gateway.catalog import CATALOG, Size
from gateway.catalog.pricing import Price
from gateway.prices.book import CURRENT, SCHEDULED, SUPERSEDED, PriceBook, PriceEntry

KONTEXT = CATALOG["fal-ai/flux-kontext-lora"]
INPAINTING = CATALOG["fal-ai/flux-lora/inpainting"]


def _entry(version: int, effective_at: float, endpoint: str = KONTEXT.id) -> PriceEntry:
    return PriceEntry(endpoint, Price(1_000 * version, version=version), effective_at, 0.0)


def test_the_catalog_price_applies_until_the_table_has_one_in_effect() -> None:
    book = PriceBook.of(3, [_entry(3, 200.0)])
    assert book.price(KONTEXT, 199.9) == KONTEXT.catalog_price == Price(35_000, version=0)
    assert book.price(KONTEXT, 200.0) == Price(3_000, version=3)
    assert book.price(INPAINTING, 300.0) == INPAINTING.catalog_price


def test_the_latest_in_effect_applies_and_the_newest_version_of_a_tie() -> None:
    older, tied, newer, later = (
        _entry(1, 100.0),
        _entry(4, 150.0),
        _entry(2, 150.0),
        _entry(3, 500.0),
    )
    book = PriceBook.of(4, [later, newer, tied, older, _entry(5, 120.0, INPAINTING.id)])
    assert book.price(KONTEXT, 120.0).version == 1
    assert book.price(KONTEXT, 160.0).version == 4
    assert [book.state(e, 160.0) for e in (older, newer, tied, later)] == [
        SUPERSEDED,
        SUPERSEDED,
        CURRENT,
        SCHEDULED,
    ]
    [listed] = [e for e in book.listing(160.0) if e["endpoint"] == KONTEXT.id]
    assert listed["current"]["version"] == 4
    assert [e["version"] for e in listed["scheduled"]] == [3]
    assert [e["version"] for e in listed["superseded"]] == [2, 1]


def test_a_teams_own_price_applies_instead_of_the_table() -> None:
    own = Price(9, 1, 2, version=7)
    book = PriceBook.of(2, [_entry(2, 0.0)])
    assert book.price(KONTEXT, 10.0, {KONTEXT.id: own}) == own
    assert book.price(INPAINTING, 10.0, {KONTEXT.id: own}) == INPAINTING.catalog_price


def test_a_price_costs_its_terms_and_travels_in_compact_form() -> None:
    price = Price(35_000, 100, 1_000, version=12)
    assert price.cost([]) == 1_000
    assert price.image_cost(Size(1000, 1000)) == 35_100
    assert price.cost([Size(1, 1), Size(1, 1)]) == 1_000 + 2 * (1 + 100)  # rounded up per image
    assert Price.decode(price.encode()) == price
    assert price.encode() == "12:35000:100:1000"
    assert [Price.decode(text) for text in (None, "", "1:2:3", "a:1:2:3")] == [None] * 4
