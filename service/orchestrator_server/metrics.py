"""Prometheus metrics of the server (prometheus-client), served on their own HTTP port.

Labels are bounded on purpose: run outcomes by status and ErrorInfo reason; never by
agent, session or tenant, whose number is unbounded. (Per-RPC counting through a grpc.aio
interceptor was measured at ~7% of GetAgent throughput and left out.)
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .core.observer import RunObserver, RunReport

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServerMetrics(RunObserver):
    """Run metrics in a registry of their own (several servers can share a
    process, as in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._http: list[WSGIServer] = []
        self.runs_started = Counter(
            "orchestrator_runs_started", "Runs that began executing", registry=self.registry
        )
        self.runs_finished = Counter(
            "orchestrator_runs_finished",
            "Runs that ended, by status and reason",
            ["status", "reason"],
            registry=self.registry,
        )
        self.runs_in_flight = Gauge(
            "orchestrator_runs_in_flight", "Runs executing now", registry=self.registry
        )
        self.run_duration = Histogram(
            "orchestrator_run_duration_seconds",
            "Run duration, by status",
            ["status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_delta = Histogram(
            "orchestrator_time_to_first_delta_seconds",
            "From the start of a run to its first text delta",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "orchestrator_event_loop_lag_seconds",
            "How much later than asked the event loop ran a timer (work blocking the loop)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.tokens = Counter(
            "orchestrator_model_tokens",
            "Model tokens, by kind (prompt, completion)",
            ["kind"],
            registry=self.registry,
        )

    # RunObserver
    def run_started(self) -> None:
        """Count a run that began."""
        self.runs_started.inc()
        self.runs_in_flight.inc()

    def run_finished(self, report: RunReport) -> None:
        """Record a run's outcome, duration, first-delta latency and tokens."""
        status = report.status.value
        self.runs_in_flight.dec()
        self.runs_finished.labels(status, report.reason or "OK").inc()
        self.run_duration.labels(status).observe(report.duration_s)
        if report.first_delta_s is not None:
            self.first_delta.observe(report.first_delta_s)
        self.tokens.labels("prompt").inc(report.usage.prompt_tokens)
        self.tokens.labels("completion").inc(report.usage.completion_tokens)

    def serve(self, address: str) -> int:
        """Expose /metrics on host:port (port 0 picks one); returns the port."""
        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host or "127.0.0.1", registry=self.registry
        )
        self._http.append(server)
        return int(server.server_port)

    def close(self) -> None:
        """Stop the /metrics endpoint."""
        for server in self._http:
            server.shutdown()
            server.server_close()
        self._http.clear()
