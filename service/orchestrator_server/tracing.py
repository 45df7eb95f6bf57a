"""OpenTelemetry tracing: off unless the operator configures it through the standard
OTEL_* environment, then every RPC gets a server span and the core's runs, model calls
and tool calls get GenAI spans under it (`core/telemetry.py`), exported over OTLP/gRPC.

Tracing is on when `OTEL_TRACES_EXPORTER` is `otlp` or `console`, or an OTLP endpoint is
set (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and
`OTEL_SDK_DISABLED` is not `true`. The SDK reads the rest itself: sampling
(`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`; by default the caller's sampling
decision is followed), the batch processor's queue and delays (`OTEL_BSP_*`), the
exporter's endpoint, headers, TLS and timeout, the resource (`OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`). Message contents, tool arguments and results are recorded
only with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .core.errors import OrchestratorError
from .core.log_context import TraceContext
from .core.telemetry import ERROR_TYPE, Attributes

_PROPAGATOR = TraceContextTextMapPropagator()
_INSTRUMENTATION = "orchestrator_server"
DEFAULT_SERVICE_NAME = "agent-orchestrator"
CONTENT_OPT_IN = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# An attribute's characters unless OTEL_(SPAN_)ATTRIBUTE_VALUE_LENGTH_LIMIT says otherwise.
MAX_ATTRIBUTE_CHARS = 64 * 1024
_LENGTH_SETTINGS = ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT")


class TracingConfigError(ValueError):
    """The OTEL_* environment asks for something this build cannot do."""


def error_type_of(error: BaseException) -> str:
    """`error.type` of an exception: an OrchestratorError's reason, else its class."""
    if isinstance(error, OrchestratorError):
        return str(error.reason)
    return type(error).__name__


class OtelSpan:
    """The core's view of an SDK span."""

    __slots__ = ("_span", "settled")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self.settled = False  # failed, or its outcome recorded

    def set(self, attributes: Attributes) -> None:
        """Add or replace attributes."""
        self._span.set_attributes(attributes)

    def fail(self, error_type: str, description: str = "") -> None:
        """`error.type` and an error status."""
        self.settled = True
        self._span.set_attribute(ERROR_TYPE, error_type)
        self._span.set_status(Status(StatusCode.ERROR, description or None))

    def settle(self) -> None:
        """Its outcome is recorded: later exceptions leave it as it is."""
        self.settled = True


class OtelTracer:
    """The core's tracing port over an OpenTelemetry tracer provider."""

    def __init__(self, provider: trace.TracerProvider, record_content: bool = False) -> None:
        self._tracer = provider.get_tracer(_INSTRUMENTATION)
        self._record_content = record_content

    @property
    def record_content(self) -> bool:
        """Whether message contents may be recorded (the operator's opt-in)."""
        return self._record_content

    @contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[OtelSpan]:
        """An internal span, current inside the block."""
        with self._tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            handle = OtelSpan(span)
            try:
                yield handle
            except BaseException as error:
                if not handle.settled:  # the core may have said how it ended already
                    handle.fail(error_type_of(error))
                raise

    def start_server_span(self, full_method: str, metadata: Mapping[str, str]) -> trace.Span:
        """The server span of an RPC, continuing the caller's trace (W3C traceparent),
        made current for the rest of the RPC's task. It is not detached: a streaming
        handler may be closed by the event loop's finalizer in another context, where
        detaching fails, and the RPC's task (and its context) ends with the call anyway.
        The caller ends the span."""
        service, _, method = full_method.rpartition("/")
        span = self._tracer.start_span(
            full_method,
            context=_PROPAGATOR.extract(metadata),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
            record_exception=False,
            set_status_on_exception=False,
        )
        otel_context.attach(trace.set_span_in_context(span))
        return span

    def traceparent(self) -> str | None:
        """The current span's context as a W3C `traceparent`."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")


def trace_context_of(span: trace.Span) -> TraceContext | None:
    """What log lines and run records keep of a span: its trace id and span id."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return TraceContext(
        trace.format_trace_id(context.trace_id),
        trace.format_span_id(context.span_id),
        f"{int(context.trace_flags):02x}",
    )


def tracing_enabled(environ: Mapping[str, str]) -> bool:
    """Whether the OTEL_* environment turns tracing on."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def check_tracing_env(environ: Mapping[str, str]) -> str:
    """The exporter the environment asks for ("otlp", "console" or "" when tracing is
    off); TracingConfigError for one this build does not have."""
    if not tracing_enabled(environ):
        return ""
    _attribute_length(environ)
    exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter == "console":
        return exporter
    if exporter != "otlp":
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={exporter!r} is not supported: use otlp, console or none"
        )
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    if protocol.strip().lower() != "grpc":
        raise TracingConfigError(
            f"OTLP protocol {protocol!r} is not supported by this build: use grpc"
        )
    return exporter


def _exporter(kind: str) -> SpanExporter:
    if kind == "console":
        return ConsoleSpanExporter()
    # Imported only when used: the gRPC exporter's modules cost start-up time.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def provider_from_env(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A tracer provider exporting in batches as the environment says, or None when
    tracing is off. Raises TracingConfigError for settings this build cannot honour."""
    environ = os.environ if environ is None else environ
    kind = check_tracing_env(environ)
    if not kind:
        return None
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    defaults = {} if named else {SERVICE_NAME: DEFAULT_SERVICE_NAME}
    limits = SpanLimits(max_attribute_length=_attribute_length(environ))
    provider = TracerProvider(resource=Resource.create(defaults), span_limits=limits)
    provider.add_span_processor(BatchSpanProcessor(_exporter(kind)))
    return provider


class Tracing:
    """The service's tracing: its provider (flushed on close) and the tracer the core
    and the RPC handlers use."""

    def __init__(self, provider: TracerProvider, record_content: bool = False) -> None:
        self.provider = provider
        self.tracer = OtelTracer(provider, record_content)

    async def close(self) -> None:
        """Export the spans still queued (the exporter's timeout bounds it)."""
        await asyncio.to_thread(self.provider.shutdown)


def tracing_from_env(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """The tracing the OTEL_* environment configures (None: off). Its provider becomes
    the process's global one, so that libraries' own spans (the MCP client's) join the
    trees; raises TracingConfigError for settings this build cannot honour."""
    environ = os.environ if environ is None else environ
    provider = provider_from_env(environ)
    if provider is None:
        return None
    trace.set_tracer_provider(provider)
    return Tracing(provider, content_opt_in(environ))


def _attribute_length(environ: Mapping[str, str]) -> int:
    """The characters an attribute keeps: as configured, else MAX_ATTRIBUTE_CHARS (with
    recorded contents, a whole history would make spans too large to export)."""
    for name in _LENGTH_SETTINGS:
        if value := environ.get(name, "").strip():
            if not value.isdigit() or int(value) < 1:
                raise TracingConfigError(f"{name}={value!r} must be a positive integer")
            return int(value)
    return MAX_ATTRIBUTE_CHARS


def content_opt_in(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the operator opted in to recording message contents."""
    environ = os.environ if environ is None else environ
    return environ.get(CONTENT_OPT_IN, "").strip().lower() == "true"
