"""Property: no body, however strange, makes the gateway answer 5xx.

Runs against an emulator whose queue never starts a job, so nothing a generated body names is
ever fetched; generated URLs point at loopback only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.catalog import CATALOG
from tests.images import data_uri, mask_left_half, png
from tests.jobs import valid_body
from tests.servers import Emulator, Gateway, RedisServer
from tests.strategies import json_trees

FIELD_NAMES = sorted({name for e in CATALOG.values() for name in e.input_model.model_fields})
ENDPOINTS = sorted(CATALOG)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "http://127.0.0.1:9/a.png",
            "https://127.0.0.1/x",
            data_uri(png(8, 8)),
            data_uri(mask_left_half(8, 8)),
            "data:image/png;base64,@@",
            "data:,",
            "square_hd",
            "match_input",
            "16:9",
            "png",
        ]
    )
)
json_values = json_trees(scalars, FIELD_NAMES, width=5, max_leaves=12)
bodies = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(max_size=8), json_values, max_size=12
)
# Values a real caller might send, so that many mutated bodies are valid and get priced,
# checked against policy and forwarded.
plausible = (
    st.integers(min_value=0, max_value=60)
    | st.floats(min_value=0, max_value=40)
    | st.booleans()
    | st.sampled_from(["jpeg", "png", "none", "regular", "high", "auto", "1:1", "square", "euler"])
    | st.fixed_dictionaries(
        {
            "width": st.integers(min_value=1, max_value=14142),
            "height": st.integers(min_value=1, max_value=14142),
        }
    )
    | st.lists(
        st.fixed_dictionaries(
            {"path": st.sampled_from(["https://127.0.0.1/l.safetensors", "http://127.0.0.1/x"])},
            optional={"scale": st.floats(min_value=-2, max_value=2)},
        ),
        max_size=3,
    )
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, Any]:
    """An endpoint and a body: a valid one with a few fields changed, or anything at all."""
    endpoint = draw(st.sampled_from(ENDPOINTS))
    changes = draw(
        st.dictionaries(st.sampled_from(FIELD_NAMES), plausible | json_values, max_size=4)
    )
    mutated = {**valid_body(endpoint, width=8, height=8), **changes}
    return endpoint, draw(st.just(mutated) | st.just(mutated) | bodies | json_values)


@pytest.fixture(scope="module")
def idle_gateway(redis_server: RedisServer) -> Iterator[Gateway]:
    with (
        Emulator({"queue_delay": 1e6, "runners": 1}) as idle_emulator,
        Gateway(redis_server.url, idle_emulator.url) as gateway,
    ):
        yield gateway


@pytest.fixture(scope="module")
def idle_client(idle_gateway: Gateway) -> Iterator[httpx.Client]:
    token, _ = idle_gateway.new_key()
    with idle_gateway.client(token) as client:
        yield client


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_random_bodies_never_cause_5xx(idle_client: httpx.Client, request: tuple[str, Any]) -> None:
    endpoint, body = request
    response = idle_client.post(f"/{endpoint}", content=json.dumps(body))
    assert response.status_code < 500, response.text
    assert {"detail"} <= set(response.json()) or response.status_code == 200


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_cause_5xx(idle_client: httpx.Client, raw: bytes) -> None:
    response = idle_client.post(f"/{ENDPOINTS[0]}", content=raw)
    assert response.status_code == 422, response.text
