"""Property: no admin write, however hostile, answers 5xx or stores what the listings and
``/v1/me`` cannot show; what they show is again valid input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from gateway.accounts.tokens import TEAM_ID_PATTERN
from gateway.catalog import CATALOG
from gateway.http.admin import KeyCreate
from gateway.http.admin_teams import Credit, LedgerQuery, TeamCreate
from gateway.policy.limits import MAX_MICROS, KeyLimits, TeamLimits
from gateway.policy.model import Policy
from tests.servers import Emulator, Gateway, RedisServer
from tests.strategies import json_trees

TEAM = "fuzz"
FIELD_NAMES = sorted({name for e in CATALOG.values() for name in e.input_model.model_fields})
EDGES = [0, 1, -1, 4, 1000, 1001, 10**5, 10**5 + 1, 10**6, 10**6 + 1, 2**31, 2**53, 2**53 + 1]
EDGES += [MAX_MICROS, MAX_MICROS + 1, -MAX_MICROS, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 2**70]

numbers = (
    st.sampled_from(EDGES)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["1e30", "NaN", "Infinity", "-0", "0.000001", "1000.000001", "1e-7", "12"])
)
scalars = (
    st.none()
    | st.booleans()
    | numbers
    | st.text(max_size=10)
    | st.sampled_from([*CATALOG, "square_hd", "png", "2031-01-01T00:00:00Z", "9999-12-31T23:59Z"])
)


def _nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


json_values = json_trees(scalars, FIELD_NAMES, width=3, max_leaves=8) | st.integers(
    min_value=1, max_value=600
).map(_nested)


@dataclass(frozen=True)
class Write:
    method: str
    path: str
    model: type[BaseModel]
    base: dict[str, Any]


WRITES = [
    Write("POST", "/admin/v1/teams", TeamCreate, {"name": "f"}),
    Write("PATCH", "/admin/v1/teams/{team}", TeamLimits, {}),
    Write("PUT", "/admin/v1/teams/{team}/policy", Policy, {}),
    Write("POST", "/admin/v1/teams/{team}/credits", Credit, {"amount_micros": 1}),
    Write("POST", "/admin/v1/keys", KeyCreate, {"name": "f", "team_id": TEAM}),
    Write("PATCH", "/admin/v1/keys/{key}", KeyLimits, {}),
    Write("PUT", "/admin/v1/keys/{key}/policy", Policy, {}),
]


def _field_values(name: str) -> st.SearchStrategy[Any]:
    if name == "defaults":
        return st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=3) | json_values
    if name == "id":
        return st.from_regex(f"^{TEAM_ID_PATTERN}$", fullmatch=True) | json_values
    plausible = st.integers(0, 2000) | st.integers(-(10**16), 10**16) | st.sampled_from(["1.5"])
    return st.sampled_from(EDGES) | plausible | numbers | json_values


def _mostly(likely: Any, rarely: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``likely`` nine times in ten (and while shrinking), else something from ``rarely``."""
    return st.integers(0, 9).flatmap(lambda n: rarely if n == 9 else st.just(likely))


@st.composite
def writes(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """A write route and a body: a plausible one with some fields changed, or anything at all."""
    write = draw(st.sampled_from(WRITES))
    fields = sorted(write.model.model_fields)
    # One field changed at a time, mostly: any other invalid one would spare the server the first.
    count = min(draw(_mostly(1, st.integers(0, 4))), len(fields))
    names = draw(st.lists(st.sampled_from(fields), min_size=count, max_size=count, unique=True))
    changes = {name: draw(_field_values(name)) for name in names}
    if draw(_mostly(False, st.just(True))):
        changes[draw(st.text(max_size=6))] = draw(json_values)
    body = draw(_mostly({**write.base, **changes}, json_values))
    team = draw(_mostly(TEAM, st.text(min_size=1, max_size=8).map(lambda t: quote(t, safe=""))))
    return write.method, write.path.replace("{team}", team), json.dumps(body).encode()


@dataclass(frozen=True)
class Fuzzed:
    gateway: Gateway
    key_id: str
    token: str


@pytest.fixture(scope="module")
def fuzzed(emulator: Emulator) -> Iterator[Fuzzed]:
    """A gateway with a Redis of its own (what the fuzzing stores stays there), a funded team
    and one key of it."""
    with RedisServer() as redis_server, Gateway(redis_server.url, emulator.url) as gateway:
        token, key = gateway.new_key(team_id=TEAM)
        yield Fuzzed(gateway, str(key["id"]), token)


def _me(gateway: Gateway, token: str) -> None:
    with gateway.client(token) as caller:
        response = caller.get("/v1/me")
    assert response.status_code == 200, response.text


def _everything_reads_back_valid(fuzzed: Fuzzed) -> None:
    with fuzzed.gateway.admin() as admin:
        teams = admin.get("/admin/v1/teams")
        keys = admin.get("/admin/v1/keys")
    assert teams.status_code == 200, teams.text
    assert keys.status_code == 200, keys.text
    for team in teams.json()["teams"]:
        settings = {k: team[k] for k in ("price_multiplier", "sync_hangup")}
        TeamLimits.model_validate({**team["limits"], **settings})
        Policy.model_validate(team["policy"])
        assert abs(team["balance_micros"]) <= MAX_MICROS
    for key in keys.json()["keys"]:
        KeyLimits.model_validate(key["limits"])
        Policy.model_validate(key["policy"])
    _me(fuzzed.gateway, fuzzed.token)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(write=writes())
def test_admin_writes_never_5xx_nor_store_what_cannot_be_read(
    fuzzed: Fuzzed, write: tuple[str, str, bytes]
) -> None:
    method, path, body = write
    with fuzzed.gateway.admin() as admin:
        response = admin.request(method, path.replace("{key}", fuzzed.key_id), content=body)
    assert response.status_code < 500, response.text
    assert response.is_success or "detail" in response.json(), response.text
    _everything_reads_back_valid(fuzzed)
    if response.status_code == 201 and "secret" in response.json():
        _me(fuzzed.gateway, response.json()["secret"])


QUERIES = {
    f"/admin/v1/teams/{TEAM}/ledger": ["limit"],
    "/admin/v1/usage": ["team_id", "key_id", "endpoint", "from", "to", "group_by"],
    "/admin/v1/deliveries": ["key_id", "status"],
}
query_values = (
    st.text(max_size=25)
    | numbers.map(str)
    | st.sampled_from([TEAM, "day,key_id", "0001-01-01", "9999-12-31", "2024-02-30", "dead"])
)


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    path = draw(st.sampled_from(sorted(QUERIES)))
    return path, draw(st.dictionaries(st.sampled_from(QUERIES[path]), query_values, max_size=4))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=queries())
def test_admin_queries_never_5xx(fuzzed: Fuzzed, query: tuple[str, dict[str, str]]) -> None:
    path, params = query
    with fuzzed.gateway.admin() as admin:
        response = admin.get(path, params=params)
    assert response.status_code < 500, response.text
    assert response.is_success or "detail" in response.json(), response.text
    if path.endswith("/ledger") and response.is_success:
        wanted = LedgerQuery.model_validate(params).limit
        assert 1 <= len(response.json()["entries"]) <= wanted
