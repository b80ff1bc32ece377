"""OpenTelemetry traces of a job's hops; off unless the standard ``OTEL_*`` variables ask for them.

Spans (``docs/operations.md``, Traces, lists them and shows a job's tree): one per HTTP request
(``TracingMiddleware``), named by its route template; ``admission``; ``fal <operation>`` for
each call to fal, which carries the W3C ``traceparent`` header; ``settlement``; ``fal webhook``
for fal's webhook about a job; ``webhook delivery`` for each attempt, whose POST carries
``traceparent`` too; ``finish in background``, ``reconciler pass`` and ``reconcile job``.

A job's later hops join the trace of the request that submitted it (``job_span``): that
request's ``traceparent`` is kept on the job's request record and reservation, and a delivery
record keeps its settlement's. The request or background pass that came upon the job is linked.

Off, no SDK is loaded and every method returns at once: the hot path pays a boolean test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

Attributes = Mapping[str, AttributeValue]
SpanScope = contextlib.AbstractContextManager[Span]

TRACEPARENT = "traceparent"
SERVICE_NAME = "fal-gateway"

# Attribute names beyond OpenTelemetry's HTTP conventions (docs/operations.md, Traces, lists them).
TEAM = "gateway.team_id"
KEY = "gateway.key_id"
ENDPOINT = "fal.endpoint"
REQUEST_ID = "fal.request_id"
ACCOUNT = "fal.account"
OPERATION = "fal.operation"
OUTCOME = "gateway.outcome"
ATTEMPT = "webhook.attempt"
HTTP_STATUS = "http.response.status_code"

_OFF: SpanScope = contextlib.nullcontext(INVALID_SPAN)
_EXPORTERS = frozenset({"otlp", "console"})


def _exporters(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment names: ``OTEL_TRACES_EXPORTER``, else OTLP when an
    OTLP endpoint is set, else none."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not named:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return ["otlp"] if any(environ.get(name) for name in endpoints) else []
    names = [name.strip() for name in named.split(",") if name.strip() not in ("", "none")]
    unknown = set(names) - _EXPORTERS
    if unknown:
        raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {sorted(unknown)[0]!r}")
    return names


class Tracing:
    """The gateway's tracer, or nothing: built once per app (``from_environment``) and handed
    to what makes spans."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("gateway") if provider is not None else None
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Tracing:
        """Traces exported by OTLP over HTTP (or to the console) as the ``OTEL_*`` variables
        say; off when they name no exporter."""
        names = _exporters(environ)
        if not names:
            return cls()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk import resources
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        resource = resources.Resource.create()
        if str(resource.attributes.get(resources.SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(resources.Resource({resources.SERVICE_NAME: SERVICE_NAME}))
        provider = TracerProvider(resource=resource)
        for name in names:
            exporter = OTLPSpanExporter() if name == "otlp" else ConsoleSpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def span(
        self, name: str, attributes: Attributes | None = None, kind: SpanKind = SpanKind.INTERNAL
    ) -> SpanScope:
        """A span, child of the current one, current while the context lasts."""
        if self._tracer is None:
            return _OFF
        return self._tracer.start_as_current_span(name, kind=kind, attributes=attributes)

    def job_span(
        self,
        name: str,
        parent: str,
        attributes: Attributes | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> SpanScope:
        """A span in a job's trace: child of the current span when that is in the job's trace
        already, else of ``parent`` (the ``traceparent`` the job keeps; '' for none), with a
        link to the current span (the request or pass that came upon the job)."""
        if self._tracer is None:
            return _OFF
        current = trace.get_current_span().get_span_context()
        context = self._propagator.extract({TRACEPARENT: parent}) if parent else None
        stored = trace.get_current_span(context).get_span_context()
        if not stored.is_valid or stored.trace_id == current.trace_id:
            return self.span(name, attributes, kind)
        links = [Link(current)] if current.is_valid else None
        return self._tracer.start_as_current_span(
            name, context=context, kind=kind, attributes=attributes, links=links
        )

    def annotate(self, attributes: Attributes) -> None:
        """Add ``attributes`` to the current span (the request's, in a handler)."""
        if self._tracer is not None:
            trace.get_current_span().set_attributes(attributes)

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Put the current span's ``traceparent`` in outgoing ``headers``."""
        if self._tracer is not None:
            self._propagator.inject(headers)

    def parent(self) -> str:
        """The current span's ``traceparent``, for a job's later hops ('' when off)."""
        if self._tracer is None:
            return ""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get(TRACEPARENT, "")

    def server_span(
        self, name: str, headers: Mapping[str, str], attributes: Attributes
    ) -> SpanScope:
        """The span of a request the gateway serves, in the trace its ``headers`` name (none: a
        new trace)."""
        if self._tracer is None:
            return _OFF
        return self._tracer.start_as_current_span(
            name,
            context=self._propagator.extract(headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )

    async def shutdown(self) -> None:
        """Export what is left (the exporter's calls block: in a thread)."""
        if self.provider is not None:
            await asyncio.to_thread(self.provider.shutdown)


OFF = Tracing()
"""Tracing off: the default of every component that makes spans."""


class TracingMiddleware:
    """A server span per HTTP request, named ``<method> <route template>``: never by its raw
    path, which holds request ids and the tokens of file links. A ``traceparent`` the caller
    sends is continued."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        attributes = {"http.request.method": method}
        with self.tracing.server_span(method, carrier, attributes) as span:

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute(HTTP_STATUS, message["status"])
                    if message["status"] >= 500:
                        span.set_status(StatusCode.ERROR)
                await send(message)

            try:
                await self.app(scope, receive, traced_send)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
