"""What the run engine reports for monitoring, without depending on a metrics library."""

from __future__ import annotations

from typing import Protocol

from .types import RunStatus, Usage


class RunObserver(Protocol):
    """Receives one call when a run starts and one when it ends."""

    def run_started(self) -> None:
        """A run began executing."""

    def run_finished(
        self,
        status: RunStatus,
        reason: str,
        duration_s: float,
        first_delta_s: float | None,
        usage: Usage,
    ) -> None:
        """A run ended (completed, failed or cancelled)."""


class NoObserver:
    """The default: observes nothing."""

    def run_started(self) -> None:
        """Ignore."""

    def run_finished(
        self,
        status: RunStatus,
        reason: str,
        duration_s: float,
        first_delta_s: float | None,
        usage: Usage,
    ) -> None:
        """Ignore."""
