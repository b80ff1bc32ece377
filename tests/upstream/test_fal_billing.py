"""fal's tags and billable units as the gateway writes and reads them (pure functions)."""

from __future__ import annotations

import pytest

from gateway.upstream.fal_billing import parse_tags, parse_units, tagged, units_text


def test_tags_are_normalised_and_invalid_pairs_dropped_as_fal_does() -> None:
    packed = " Env = prod ,fal.x=1,a b=1,noequals,v=has\x01ctl,k=last,k=wins,=empty"
    assert parse_tags(packed) == {"env": "prod", "k": "wins"}
    assert parse_tags(None) == {}
    assert parse_tags(f"k={'v' * 257}") == {}
    assert parse_tags(f"{'k' * 65}=v") == {}


def test_tags_keep_within_fals_limits() -> None:
    assert len(parse_tags(",".join(f"k{n}=v" for n in range(15)))) == 10
    big = ",".join(f"k{n}={'v' * 250}" for n in range(5))  # 4 x 252 bytes fit in 1024, not 5
    assert list(parse_tags(big)) == ["k0", "k1", "k2", "k3"]


def test_the_gateways_tags_win_and_fit_first() -> None:
    caller = {"X-Fal-Tags": "team=other,env=prod", "x-fal-queue-priority": "low"}
    headers = tagged(caller, {"team": "t1", "key": "k1"})
    assert headers == {"x-fal-queue-priority": "low", "x-fal-tags": "team=t1,key=k1,env=prod"}
    crowded = {"x-fal-tags": ",".join(f"c{n}=v" for n in range(10))}
    assert tagged(crowded, {"team": "t1"})["x-fal-tags"].count(",") == 9
    assert tagged({}, {"team": "t1"}) == {"x-fal-tags": "team=t1"}


@pytest.mark.parametrize(
    ("header", "units"),
    [
        ("2", "2"),
        (" 3.008 ", "3.008"),
        ("1.50", "1.5"),
        ("2E+1", "20"),
        ("0", "0"),
        ("-1", ""),
        ("NaN", ""),
        ("Infinity", ""),
        ("lots", ""),
        ("1e12", ""),
        (None, ""),
    ],
)
def test_billable_units_are_read_as_plain_decimals(header: str | None, units: str) -> None:
    assert parse_units(header) == units


def test_units_text() -> None:
    assert (units_text(2), units_text(0)) == ("2", "0")
