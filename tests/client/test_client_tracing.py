"""The Python client joins the caller's OpenTelemetry trace (issue 16): inside an active
span every call carries its W3C context, so the run and the model request it causes are
in the caller's trace; outside one, nothing is added."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from orchestrator import AsyncOrchestrator
from orchestrator._channel import with_trace_context
from orchestrator_devmodel import DevModelAdmin


async def test_calls_in_a_span_carry_its_trace(
    client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    await client.create_agent("echo")
    tracer = TracerProvider().get_tracer("caller")
    with tracer.start_as_current_span("caller's work") as span:
        assert await client.run("traced", "echo") == "Echo: traced"
    assert await client.run("untraced", "echo") == "Echo: untraced"
    traced, untraced = await admin.requests()
    trace_id = trace.format_trace_id(span.get_span_context().trace_id)
    assert traced["traceparent"].split("-")[1] == trace_id
    assert untraced["traceparent"] is None
    [run] = [r for r in await client.list_runs("echo") if r.input == "traced"]
    assert run.trace_id == trace_id


def test_metadata_outside_a_span_is_unchanged_and_a_callers_own_traceparent_wins() -> None:
    fixed = (("x-tenant-id", "t"),)
    assert with_trace_context(fixed) is fixed
    own = (("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01"),)
    with TracerProvider().get_tracer("caller").start_as_current_span("work"):
        assert with_trace_context(own) is own
        added = dict(with_trace_context(fixed))
    assert added["x-tenant-id"] == "t" and added["traceparent"].startswith("00-")
