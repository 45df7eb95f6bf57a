"""`--log-format json`: one JSON object per line, for log pipelines.

Each line has `time` (UTC, ISO 8601 with milliseconds), `level`, `logger` and `message`,
and what the line is about when it is known: `tenant` and `principal` of the call,
`run_id` and `agent_id` of the run, `trace_id` and `parent_span_id` from the caller's
W3C `traceparent` (with tracing on: the RPC's server span), and `span_id` of the span
the line was written in when tracing is on. An exception's traceback is in
`exception`. Secrets and message contents are never logged by the service (log calls
pass ids, counts and reasons).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace as otel_trace

from .core.access import SYSTEM, current_caller
from .core.log_context import CURRENT_RUN, CURRENT_TRACE

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """Log records as JSON lines with the call's and the run's context."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        caller = current_caller()
        if caller is not SYSTEM:
            line["tenant"] = caller.tenant
            line["principal"] = caller.principal
        run = CURRENT_RUN.get()
        if run is not None:
            line["run_id"], line["agent_id"] = run.run_id, run.agent_id
        trace = CURRENT_TRACE.get()
        if trace is not None:
            line["trace_id"], line["parent_span_id"] = trace.trace_id, trace.parent_span_id
        span = otel_trace.get_current_span().get_span_context()
        if span.is_valid:
            line["span_id"] = otel_trace.format_span_id(span.span_id)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, log_format: str) -> None:
    """The process's root handler: text (the default) or JSON lines on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # The HTTP client logs every model request at INFO; that is noise at our INFO level.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
