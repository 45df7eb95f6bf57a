"""Domain errors of the orchestrator core.

Every error the core raises on purpose is an `OrchestratorError` with a stable,
UPPER_SNAKE `reason` (a `Reason`: the `orchestrator.v1.ErrorReason` names), a message safe to show a
client, `metadata` for dynamic values and, for bad input, field violations. The API layer
maps each class to a gRPC status in one table (`api/error_mapping.py`); anything else that
escapes becomes INTERNAL there.

    OrchestratorError
    ├── InvalidArgumentError      bad input (field violations attached)
    ├── NotFoundError             AGENT_NOT_FOUND, RUN_NOT_FOUND, SESSION_NOT_FOUND
    ├── UnauthenticatedError      UNAUTHENTICATED, TOKEN_EXPIRED
    ├── PermissionDeniedError     PERMISSION_DENIED, TENANT_ACCESS_DENIED, POLICY_DENIED
    ├── AlreadyExistsError        AGENT_ALREADY_EXISTS
    ├── FailedPreconditionError   NO_DEFAULT_AGENT, MODEL_AUTH_FAILED, MODEL_NOT_FOUND, ...
    ├── AbortedError              ETAG_MISMATCH, SESSION_BUSY
    ├── ResourceExhaustedError    MODEL_RATE_LIMITED, REQUEST_TOO_LARGE, ...
    │   └── QuotaExceededError    QUOTA_EXCEEDED (an operator's quota; QuotaFailure detail)
    ├── UnavailableError          MODEL_UNAVAILABLE, RUN_INTERRUPTED, STORE_UNAVAILABLE
    ├── DeadlineExceededError     MODEL_TIMEOUT, DEADLINE_EXCEEDED
    └── RunCancelledError         RUN_CANCELLED, RUN_SUPERSEDED (recorded outcomes, not
                                  asyncio.CancelledError)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """Every `ErrorInfo.reason` the service reports: exactly the values of
    `orchestrator.v1.ErrorReason` in `error_reason.proto` (a unit test keeps them equal)."""

    AGENT_NOT_FOUND = "AGENT_NOT_FOUND"
    AGENT_ALREADY_EXISTS = "AGENT_ALREADY_EXISTS"
    INVALID_AGENT_ID = "INVALID_AGENT_ID"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"  # noqa: S105 (an error name, not a secret)
    INVALID_UPDATE_MASK = "INVALID_UPDATE_MASK"
    ETAG_MISMATCH = "ETAG_MISMATCH"
    NO_DEFAULT_AGENT = "NO_DEFAULT_AGENT"
    SESSION_BUSY = "SESSION_BUSY"
    RUN_NOT_FOUND = "RUN_NOT_FOUND"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    RUN_CANCELLED = "RUN_CANCELLED"
    RUN_INTERRUPTED = "RUN_INTERRUPTED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    MODEL_RATE_LIMITED = "MODEL_RATE_LIMITED"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
    MODEL_AUTH_FAILED = "MODEL_AUTH_FAILED"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
    MODEL_REQUEST_REJECTED = "MODEL_REQUEST_REJECTED"
    MODEL_TIMEOUT = "MODEL_TIMEOUT"
    STREAM_PROTOCOL_VIOLATION = "STREAM_PROTOCOL_VIOLATION"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    REQUEST_ID_CONFLICT = "REQUEST_ID_CONFLICT"
    INVALID_TENANT = "INVALID_TENANT"
    AGENT_DELETED = "AGENT_DELETED"
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    UNKNOWN_TOOL = "UNKNOWN_TOOL"
    MODEL_CALL_LIMIT = "MODEL_CALL_LIMIT"
    CLIENT_TOOL_TIMEOUT = "CLIENT_TOOL_TIMEOUT"
    UNEXPECTED_TOOL_RESULT = "UNEXPECTED_TOOL_RESULT"
    AGENT_CALL_CYCLE = "AGENT_CALL_CYCLE"
    AGENT_CALL_DEPTH_EXCEEDED = "AGENT_CALL_DEPTH_EXCEEDED"
    TEAM_NOT_FOUND = "TEAM_NOT_FOUND"
    TEAM_ALREADY_EXISTS = "TEAM_ALREADY_EXISTS"
    AGENT_IN_USE = "AGENT_IN_USE"
    MEMBER_TIMEOUT = "MEMBER_TIMEOUT"
    TOO_MANY_PENDING_TURNS = "TOO_MANY_PENDING_TURNS"
    SERVER_STOPPING = "SERVER_STOPPING"
    MODEL_OUTPUT_LIMIT = "MODEL_OUTPUT_LIMIT"
    RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 (an error name, not a secret)
    PERMISSION_DENIED = "PERMISSION_DENIED"
    TENANT_ACCESS_DENIED = "TENANT_ACCESS_DENIED"
    POLICY_DENIED = "POLICY_DENIED"
    API_KEY_NOT_FOUND = "API_KEY_NOT_FOUND"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    RUN_SUPERSEDED = "RUN_SUPERSEDED"
    RUN_EVENTS_UNAVAILABLE = "RUN_EVENTS_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request: its path (e.g. `agent.agent_id`) and what is wrong."""

    field: str
    description: str


class OrchestratorError(Exception):
    """Base of every error the core raises deliberately."""

    default_reason = Reason.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason: Reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations = violations


class InvalidArgumentError(OrchestratorError):
    """The request is malformed; `violations` names the fields."""

    default_reason = Reason.INVALID_ARGUMENT

    @classmethod
    def for_field(
        cls,
        field: str,
        description: str,
        *,
        reason: Reason | None = None,
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


class UnauthenticatedError(OrchestratorError):
    """The call carries no valid credentials."""

    default_reason = Reason.UNAUTHENTICATED


class PermissionDeniedError(OrchestratorError):
    """The caller is known but may not do this (only for things it may see)."""

    default_reason = Reason.PERMISSION_DENIED


class AlreadyExistsError(OrchestratorError):
    """A resource with the same id exists."""


class FailedPreconditionError(OrchestratorError):
    """The system is not in a state in which the request can succeed."""


class AbortedError(OrchestratorError):
    """A concurrency conflict: stale etag, busy session. Retrying later may succeed."""


class ResourceExhaustedError(OrchestratorError):
    """A quota or size limit was hit."""


class QuotaExceededError(ResourceExhaustedError):
    """An operator's quota is used up: `subject` names whose (e.g. `tenant:acme`)."""

    default_reason = Reason.QUOTA_EXCEEDED

    def __init__(self, message: str, *, subject: str, quota: str, limit: int) -> None:
        super().__init__(message, metadata={"quota": quota, "limit": str(limit)})
        self.subject = subject
        self.quota = quota
        self.limit = limit
        # Seconds after which a retry can succeed, when the server knows (RetryInfo).
        self.retry_after: float | None = None


class UnavailableError(OrchestratorError):
    """A dependency (the model provider) or the server itself is unavailable."""


class DeadlineExceededError(OrchestratorError):
    """Something did not finish in time."""


class RunCancelledError(OrchestratorError):
    """The run was cancelled by its client, its deadline, or `CancelRun`."""

    default_reason = Reason.RUN_CANCELLED


# The class of the error each reason is raised with, so that an error recorded in a run
# (only its reason and message are stored) is reported again with the same status.
_CLASS_BY_REASON: dict[Reason, type[OrchestratorError]] = {
    Reason.AGENT_NOT_FOUND: NotFoundError,
    Reason.RUN_NOT_FOUND: NotFoundError,
    Reason.SESSION_NOT_FOUND: NotFoundError,
    Reason.TEAM_NOT_FOUND: NotFoundError,
    Reason.AGENT_ALREADY_EXISTS: AlreadyExistsError,
    Reason.TEAM_ALREADY_EXISTS: AlreadyExistsError,
    Reason.NO_DEFAULT_AGENT: FailedPreconditionError,
    Reason.MODEL_AUTH_FAILED: FailedPreconditionError,
    Reason.MODEL_NOT_FOUND: FailedPreconditionError,
    Reason.PROVIDER_NOT_CONFIGURED: FailedPreconditionError,
    Reason.AGENT_DELETED: FailedPreconditionError,
    Reason.AGENT_IN_USE: FailedPreconditionError,
    Reason.RUN_EVENTS_UNAVAILABLE: FailedPreconditionError,
    Reason.ETAG_MISMATCH: AbortedError,
    Reason.SESSION_BUSY: AbortedError,
    Reason.MODEL_RATE_LIMITED: ResourceExhaustedError,
    Reason.REQUEST_TOO_LARGE: ResourceExhaustedError,
    Reason.MODEL_CALL_LIMIT: ResourceExhaustedError,
    Reason.TOO_MANY_PENDING_TURNS: ResourceExhaustedError,
    Reason.MODEL_OUTPUT_LIMIT: ResourceExhaustedError,
    Reason.RESPONSE_TOO_LARGE: ResourceExhaustedError,
    Reason.QUOTA_EXCEEDED: ResourceExhaustedError,
    Reason.MODEL_UNAVAILABLE: UnavailableError,
    Reason.RUN_INTERRUPTED: UnavailableError,
    Reason.SERVER_STOPPING: UnavailableError,
    Reason.STORE_UNAVAILABLE: UnavailableError,
    Reason.MODEL_TIMEOUT: DeadlineExceededError,
    Reason.DEADLINE_EXCEEDED: DeadlineExceededError,
    Reason.CLIENT_TOOL_TIMEOUT: DeadlineExceededError,
    Reason.MEMBER_TIMEOUT: DeadlineExceededError,
    Reason.RUN_CANCELLED: RunCancelledError,
    Reason.RUN_SUPERSEDED: RunCancelledError,
    Reason.INVALID_AGENT_ID: InvalidArgumentError,
    Reason.INVALID_ARGUMENT: InvalidArgumentError,
    Reason.INVALID_PAGE_SIZE: InvalidArgumentError,
    Reason.INVALID_PAGE_TOKEN: InvalidArgumentError,
    Reason.INVALID_UPDATE_MASK: InvalidArgumentError,
    Reason.MODEL_REQUEST_REJECTED: InvalidArgumentError,
    Reason.STREAM_PROTOCOL_VIOLATION: InvalidArgumentError,
    Reason.REQUEST_ID_CONFLICT: InvalidArgumentError,
    Reason.INVALID_TENANT: InvalidArgumentError,
    Reason.MALFORMED_REQUEST: InvalidArgumentError,
    Reason.UNKNOWN_TOOL: InvalidArgumentError,
    Reason.UNEXPECTED_TOOL_RESULT: InvalidArgumentError,
    Reason.AGENT_CALL_CYCLE: InvalidArgumentError,
    Reason.AGENT_CALL_DEPTH_EXCEEDED: InvalidArgumentError,
    Reason.UNAUTHENTICATED: UnauthenticatedError,
    Reason.TOKEN_EXPIRED: UnauthenticatedError,
    Reason.PERMISSION_DENIED: PermissionDeniedError,
    Reason.TENANT_ACCESS_DENIED: PermissionDeniedError,
    Reason.POLICY_DENIED: PermissionDeniedError,
    Reason.API_KEY_NOT_FOUND: NotFoundError,
    Reason.INTERNAL_ERROR: OrchestratorError,
}


def error_for_reason(reason: str, message: str) -> OrchestratorError:
    """Rebuild an error from a stored reason (an unknown one becomes INTERNAL_ERROR)."""
    try:
        known = Reason(reason)
    except ValueError:
        known = Reason.INTERNAL_ERROR
    return _CLASS_BY_REASON[known](message, reason=known)
