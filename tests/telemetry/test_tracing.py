"""Traces of a job's hops: the gateway in this process (uvicorn in a thread, the SDK's in-memory
exporter) on real Redis and the real emulator; and, as an operator runs it, a gateway process
exporting OTLP over HTTP as the ``OTEL_*`` variables say, or nothing when they are unset."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from secrets import token_hex
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind

from gateway.app import create_app
from gateway.settings import Settings
from gateway.telemetry.tracing import Tracing
from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.peer import Peer
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog, free_port

ADMIN_TOKEN = "trace-admin-token"
SUBMIT = "POST /{endpoint:path}"
POLL = "GET /{owner}/{app}/requests/{request_id}/status"


def _settings(
    redis_url: str, emulator: Emulator, port: int, public_url: str, **overrides: Any
) -> Settings:
    """What ``tests.servers.Gateway`` sets, for a gateway served in this process."""
    upstream = emulator.url
    return Settings(
        **overrides,
        port=port,
        redis_url=redis_url,
        public_url=public_url,
        admin_token=ADMIN_TOKEN,
        fal_key=(Emulator.KEY,),
        upstream_queue_url=upstream,
        upstream_run_url=f"{upstream}/sync",
        upstream_rest_url=upstream,
        fal_jwks_url=f"{upstream}/.well-known/jwks.json",
        webhook_allow_http=True,
        webhook_allowed_networks=("127.0.0.0/8",),
        webhook_retry_schedule=(0.3, 0.6),
    )


class InProcessGateway:
    """The gateway's ASGI app served by uvicorn in a thread of the test, traced into memory."""

    def __init__(
        self, redis_url: str, emulator: Emulator, public_url: str | None = None, **settings: Any
    ) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        built = _settings(redis_url, emulator, port, public_url or self.url, **settings)
        app = create_app(built, Tracing(provider))
        self._server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> InProcessGateway:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "the in-process gateway did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"})

    def new_key(self) -> str:
        """The secret of a key of a new, funded team."""
        team = f"trace-{token_hex(4)}"
        with self.client(ADMIN_TOKEN) as admin:
            admin.post("/admin/v1/teams", json={"id": team, "name": team}).raise_for_status()
            credit = {"amount_micros": Gateway.FUNDS, "note": "test funds"}
            admin.post(f"/admin/v1/teams/{team}/credits", json=credit).raise_for_status()
            created = admin.post("/admin/v1/keys", json={"name": "t", "team_id": team})
        created.raise_for_status()
        return str(created.json()["secret"])

    def spans(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    def wait_span(self, name: str, timeout: float = 20) -> ReadableSpan:
        """The first finished span called ``name``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.spans() if s.name == name]
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {name!r} span in {timeout}s")


@pytest.fixture
def traced(private_redis_url: str, emulator: Emulator) -> Iterator[InProcessGateway]:
    """On a Redis of its own: another gateway's delivery worker would take its deliveries."""
    with InProcessGateway(private_redis_url, emulator) as running:
        yield running


def _context(span: ReadableSpan) -> SpanContext:
    context: SpanContext | None = span.context
    assert context is not None
    return context


def traceparent(span: ReadableSpan) -> str:
    context = _context(span)
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def only(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name == name]
    return span


def parent_name(spans: Sequence[ReadableSpan], span: ReadableSpan) -> str:
    assert span.parent is not None
    [parent] = [s for s in spans if _context(s).span_id == span.parent.span_id]
    return parent.name


def tree(spans: Sequence[ReadableSpan], root: ReadableSpan) -> str:
    """The spans under ``root``, one a line, indented by depth, with their attributes."""
    lines: list[str] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        shown = " ".join(f"{k}={v}" for k, v in sorted(attributes(span).items()))
        links = f" (linked to {len(span.links)})" if span.links else ""
        kind = span.kind.name.lower()
        lines.append(f"{'  ' * depth}{span.name} [{kind}]{links} {shown}".rstrip())
        own = _context(span).span_id
        children = [s for s in spans if s.parent is not None and s.parent.span_id == own]
        for child in sorted(children, key=lambda s: s.start_time or 0):
            walk(child, depth + 1)

    walk(root, 0)
    return "\n".join(lines)


def test_a_job_is_one_trace_from_submit_to_its_webhook(
    traced: InProcessGateway, emulator: Emulator, peer: Peer
) -> None:
    secret = traced.new_key()
    hook = f"/hook-{token_hex(4)}"
    upstream = UpstreamLog(emulator)
    with traced.client(secret) as caller:
        job = submit(caller, KONTEXT, valid_body(KONTEXT), fal_webhook=f"{peer.url}{hook}")
    [received] = peer.wait_for_posts(hook, 1)
    delivery = traced.wait_span("webhook delivery")
    spans = traced.spans()
    request = only(spans, SUBMIT)
    in_trace = [s for s in spans if _context(s).trace_id == _context(request).trace_id]
    print(tree(in_trace, request))  # the trace tree of one job, for the docs

    assert request.kind == SpanKind.SERVER
    assert request.parent is None
    named = attributes(request)
    assert named["http.route"] == "/{endpoint:path}"
    assert named["http.response.status_code"] == 200
    assert named["fal.endpoint"] == KONTEXT
    assert named["fal.request_id"] == job["request_id"]
    assert str(named["gateway.team_id"]).startswith("trace-")
    assert named["fal.account"]
    assert parent_name(in_trace, only(in_trace, "admission")) == SUBMIT
    fal_submit = only(in_trace, "fal submit")
    assert fal_submit.kind == SpanKind.CLIENT
    assert parent_name(in_trace, fal_submit) == SUBMIT
    [sent] = upstream.submits()
    assert sent["traceparent"] == traceparent(fal_submit)

    ingress = only(in_trace, "fal webhook")
    assert parent_name(in_trace, ingress) == SUBMIT
    [link] = ingress.links
    assert link.context.span_id == _context(only(spans, "POST /webhooks/fal")).span_id
    settlement = only(in_trace, "settlement")
    assert parent_name(in_trace, settlement) == "fal webhook"
    assert attributes(settlement)["gateway.outcome"] == "charged"
    assert parent_name(in_trace, delivery) == "settlement"
    assert attributes(delivery)["webhook.attempt"] == 1
    assert attributes(delivery)["gateway.outcome"] == "delivered"
    assert attributes(delivery)["http.response.status_code"] == 200
    assert received.headers["traceparent"] == traceparent(delivery)

    shown = repr([(s.name, attributes(s)) for s in spans])
    assert secret not in shown
    assert Emulator.KEY not in shown


def test_a_poll_that_finishes_a_job_does_it_in_the_jobs_trace(
    private_redis_url: str, emulator: Emulator
) -> None:
    """fal's webhook never comes (the public URL is a closed port): the poll that sees the job
    COMPLETED has it finished in the background, in the job's trace, linked to the poll."""
    closed = "http://127.0.0.1:9"
    with InProcessGateway(private_redis_url, emulator, public_url=closed) as traced:
        with traced.client(traced.new_key()) as caller:
            job = submit(caller, KONTEXT, valid_body(KONTEXT))
            wait_status(caller, f"/{KONTEXT}/requests/{job['request_id']}/status")
        finishing = traced.wait_span("finish in background")
        settlement = traced.wait_span("settlement")
    spans = traced.spans()
    request = only(spans, SUBMIT)
    polls = [s for s in spans if s.name == POLL]
    assert {attributes(p)["fal.request_id"] for p in polls} == {job["request_id"]}
    assert parent_name(spans, finishing) == SUBMIT
    assert parent_name(spans, settlement) == "finish in background"
    assert parent_name(spans, only(spans, "fal result")) == "finish in background"
    [link] = finishing.links
    assert link.context.span_id in {_context(p).span_id for p in polls}
    print(tree(spans, request))


def test_the_reconciler_finishes_a_job_in_its_trace(
    private_redis_url: str, emulator: Emulator
) -> None:
    """Nobody hears of the job's end (no webhook, no poll): the reconciler's pass checks it in
    the job's trace, linked to the pass."""
    quick = {"reconcile_interval": 0.2, "reconcile_after": 0.5}
    closed = "http://127.0.0.1:9"
    with InProcessGateway(private_redis_url, emulator, public_url=closed, **quick) as traced:
        with traced.client(traced.new_key()) as caller:
            submit(caller, KONTEXT, valid_body(KONTEXT))
        settlement = traced.wait_span("settlement")
    spans = traced.spans()
    assert settlement.parent is not None
    [checked] = [s for s in spans if _context(s).span_id == settlement.parent.span_id]
    assert checked.name == "reconcile job"
    assert parent_name(spans, checked) == SUBMIT
    assert parent_name(spans, only(spans, "fal result")) == "reconcile job"
    [link] = checked.links
    assert link.context.span_id in {
        _context(s).span_id for s in spans if s.name == "reconciler pass"
    }


def test_no_trace_context_reaches_fal_with_tracing_off(
    caller: httpx.Client, emulator: Emulator
) -> None:
    upstream = UpstreamLog(emulator)
    job = submit(caller, KONTEXT, valid_body(KONTEXT))
    wait_status(caller, job["status_url"])
    seen = upstream.requests()
    assert seen
    assert all(r["traceparent"] is None for r in seen)


def test_otel_variables_turn_on_otlp_export(
    redis_server: RedisServer, emulator: Emulator, peer: Peer
) -> None:
    path = f"/otlp-{token_hex(4)}"
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"{peer.url}{path}",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "gateway-under-test",
    }
    with Gateway(redis_server.url, emulator.url, extra_env=otel) as gateway:
        token, _ = gateway.new_key()
        with gateway.client(token) as caller:
            submit(caller, KONTEXT, valid_body(KONTEXT))
        deadline = time.monotonic() + 20
        while not {SUBMIT, "admission", "fal submit"} <= (names := _exported(peer, path)):
            assert time.monotonic() < deadline, names
            time.sleep(0.05)


def _exported(peer: Peer, path: str) -> set[str]:
    """The names of the spans exported to ``path`` so far (OTLP/HTTP protobuf), each checked
    to come from the service the environment names."""
    names = set()
    for post in peer.posts(f"{path}/v1/traces"):
        for resource_spans in ExportTraceServiceRequest.FromString(post.body).resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert service["service.name"] == "gateway-under-test"
            names |= {s.name for scope in resource_spans.scope_spans for s in scope.spans}
    return names


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_is_off_unless_the_environment_names_an_exporter(
    environ: dict[str, str], enabled: bool
) -> None:
    tracing = Tracing.from_environment(environ)
    assert tracing.enabled is enabled
    assert (tracing.provider is not None) is enabled
    if tracing.provider is not None:
        tracing.provider.shutdown()


def test_an_unknown_exporter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown exporter 'jaeger'"):
        Tracing.from_environment({"OTEL_TRACES_EXPORTER": "jaeger"})
