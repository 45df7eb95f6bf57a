"""What the run engine reports for monitoring, without depending on a metrics library."""

from __future__ import annotations

from dataclasses import dataclass

from .types import RunStatus, Usage


@dataclass(frozen=True, slots=True)
class RunReport:
    """How a run ended, for monitoring: outcome, reason, timings (seconds) and tokens."""

    status: RunStatus
    reason: str
    duration_s: float
    first_delta_s: float | None
    usage: Usage


class RunObserver:
    """Receives one call when a run starts and one when it ends; observes nothing unless
    a subclass (the Prometheus metrics) overrides the calls."""

    def run_started(self) -> None:
        """A run began executing."""

    def run_finished(self, report: RunReport) -> None:
        """A run ended (completed, failed or cancelled)."""
