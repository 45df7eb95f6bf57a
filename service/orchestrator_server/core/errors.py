"""Domain errors of the orchestrator core.

Every error the core raises on purpose is an `OrchestratorError` with a stable,
UPPER_SNAKE `reason` (the `orchestrator.v1.ErrorReason` names), a message safe to show a
client, `metadata` for dynamic values and, for bad input, field violations. The API layer
maps each class to a gRPC status in one table (`api/error_mapping.py`); anything else that
escapes becomes INTERNAL there.

    OrchestratorError
    ├── InvalidArgumentError      bad input (field violations attached)
    ├── NotFoundError             AGENT_NOT_FOUND, RUN_NOT_FOUND, SESSION_NOT_FOUND
    ├── AlreadyExistsError        AGENT_ALREADY_EXISTS
    ├── FailedPreconditionError   NO_DEFAULT_AGENT, MODEL_AUTH_FAILED, MODEL_NOT_FOUND, ...
    ├── AbortedError              ETAG_MISMATCH, SESSION_BUSY
    ├── ResourceExhaustedError    MODEL_RATE_LIMITED, REQUEST_TOO_LARGE
    ├── UnavailableError          MODEL_UNAVAILABLE, RUN_INTERRUPTED
    ├── DeadlineExceededError     MODEL_TIMEOUT, DEADLINE_EXCEEDED
    └── RunCancelledError         RUN_CANCELLED (a recorded outcome, not asyncio.CancelledError)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request: its path (e.g. `agent.agent_id`) and what is wrong."""

    field: str
    description: str


class OrchestratorError(Exception):
    """Base of every error the core raises deliberately."""

    default_reason = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations = violations


class InvalidArgumentError(OrchestratorError):
    """The request is malformed; `violations` names the fields."""

    default_reason = "INVALID_ARGUMENT"

    @classmethod
    def for_field(
        cls,
        field: str,
        description: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> InvalidArgumentError:
        """An error about a single field, with its violation attached."""
        return cls(
            f"{field}: {description}",
            reason=reason,
            metadata=metadata,
            violations=(FieldViolation(field, description),),
        )


class NotFoundError(OrchestratorError):
    """The named resource does not exist (for this tenant)."""


class AlreadyExistsError(OrchestratorError):
    """A resource with the same id exists."""


class FailedPreconditionError(OrchestratorError):
    """The system is not in a state in which the request can succeed."""


class AbortedError(OrchestratorError):
    """A concurrency conflict: stale etag, busy session. Retrying later may succeed."""


class ResourceExhaustedError(OrchestratorError):
    """A quota or size limit was hit."""


class UnavailableError(OrchestratorError):
    """A dependency (the model provider) or the server itself is unavailable."""


class DeadlineExceededError(OrchestratorError):
    """Something did not finish in time."""


class RunCancelledError(OrchestratorError):
    """The run was cancelled by its client, its deadline, or `CancelRun`."""

    default_reason = "RUN_CANCELLED"


# The class of the error each reason is raised with, so that an error recorded in a run
# (only its reason and message are stored) is reported again with the same status.
_CLASS_BY_REASON: dict[str, type[OrchestratorError]] = {
    "AGENT_NOT_FOUND": NotFoundError,
    "RUN_NOT_FOUND": NotFoundError,
    "SESSION_NOT_FOUND": NotFoundError,
    "AGENT_ALREADY_EXISTS": AlreadyExistsError,
    "NO_DEFAULT_AGENT": FailedPreconditionError,
    "MODEL_AUTH_FAILED": FailedPreconditionError,
    "MODEL_NOT_FOUND": FailedPreconditionError,
    "PROVIDER_NOT_CONFIGURED": FailedPreconditionError,
    "AGENT_DELETED": FailedPreconditionError,
    "ETAG_MISMATCH": AbortedError,
    "SESSION_BUSY": AbortedError,
    "MODEL_RATE_LIMITED": ResourceExhaustedError,
    "REQUEST_TOO_LARGE": ResourceExhaustedError,
    "MODEL_UNAVAILABLE": UnavailableError,
    "RUN_INTERRUPTED": UnavailableError,
    "MODEL_TIMEOUT": DeadlineExceededError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "RUN_CANCELLED": RunCancelledError,
}


def error_for_reason(reason: str, message: str) -> OrchestratorError:
    """Rebuild an error from a stored reason (unknown reasons are bad input or INTERNAL)."""
    cls = _CLASS_BY_REASON.get(reason)
    if cls is None:
        cls = (
            InvalidArgumentError
            if reason.startswith(("INVALID_", "MODEL_REQUEST"))
            else OrchestratorError
        )
    return cls(message, reason=reason)
