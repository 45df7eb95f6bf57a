"""Typed exceptions for the service's errors, chosen by `google.rpc.ErrorInfo.reason`.

Every error the service returns carries a `google.rpc.Status` with an ErrorInfo (domain
"orchestrator.v1", a stable reason) and, for bad input, BadRequest field violations.
`from_rpc_error` picks the class from one table, `ERROR_BY_REASON`; an unknown reason,
or an error without ErrorInfo (the channel's own UNAVAILABLE or DEADLINE_EXCEEDED),
falls back to the class of its status code, so `except NotFound:` keeps working when the
server learns new reasons.

    OrchestratorError                 code, message, reason, metadata, field_violations
    ├── InvalidArgument               INVALID_ARGUMENT
    │   ├── InvalidAgentId
    │   ├── InvalidPageSize · InvalidPageToken · InvalidUpdateMask
    │   ├── RequestIdConflict · StreamProtocolViolation · InvalidTenant
    │   ├── MalformedRequest · UnknownTool · UnexpectedToolResult
    │   └── ModelRequestRejected
    ├── NotFound                      NOT_FOUND
    │   └── AgentNotFound · RunNotFound · SessionNotFound · TeamNotFound · ApiKeyNotFound
    ├── Conflict
    │   ├── AlreadyExists             ALREADY_EXISTS
    │   │   └── AgentAlreadyExists · TeamAlreadyExists
    │   └── Aborted                   ABORTED
    │       └── EtagMismatch · SessionBusy
    ├── FailedPrecondition            FAILED_PRECONDITION
    │   ├── NoDefaultAgent · AgentDeleted · AgentInUse · RunEventsUnavailable
    │   └── ModelAuthFailed · ModelNotFound · ProviderNotConfigured
    ├── ResourceExhausted             RESOURCE_EXHAUSTED
    │   └── ModelRateLimited · RequestTooLarge · ModelCallLimit · TooManyPendingTurns
    │       · ModelOutputLimit · ResponseTooLarge · QuotaExceeded
    ├── Unavailable                   UNAVAILABLE (also: server unreachable)
    │   └── ModelUnavailable · RunInterrupted · ServerStopping · StoreUnavailable
    ├── DeadlineExceeded              DEADLINE_EXCEEDED (also: the client's own deadline)
    │   └── ModelTimeout · ClientToolTimeout
    ├── RunCancelledError             CANCELLED (also: a RunCancelled event ended `run`)
    │   └── RunSuperseded
    ├── Unauthenticated               UNAUTHENTICATED
    │   └── TokenExpired
    ├── PermissionDenied              PERMISSION_DENIED
    │   └── TenantAccessDenied · PolicyDenied
    └── InternalError                 INTERNAL, UNKNOWN and anything else

`RunCancelledError` has the suffix because `RunCancelled` is the run event type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.rpc import status_pb2

ERROR_DOMAIN = "orchestrator.v1"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid request field (e.g. `agent.agent_id`) and what is wrong with it."""

    field: str
    description: str


class OrchestratorError(Exception):
    """Base of every error the client raises for a failed call."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        status: status_pb2.Status | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations = field_violations
        # The full google.rpc.Status, for details this module does not interpret.
        self.status = status

    def __str__(self) -> str:
        return f"{self.reason or self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r})"
        )


class InvalidArgument(OrchestratorError):
    """The request is malformed; `field_violations` names the fields."""


class MalformedRequest(InvalidArgument):
    """The request bytes are not a valid message of the method's request type."""


class UnknownTool(InvalidArgument):
    """An agent names a tool the server does not have (`metadata["tool"]`)."""


class UnexpectedToolResult(InvalidArgument):
    """A tool result named a call that is not waiting for one."""


class InvalidAgentId(InvalidArgument):
    """The agent id breaks the naming rules."""


class InvalidPageSize(InvalidArgument):
    """page_size is negative or above the maximum (`metadata["max"]`)."""


class InvalidPageToken(InvalidArgument):
    """page_token was not issued for this listing."""


class InvalidUpdateMask(InvalidArgument):
    """An update names no field or a field that cannot be updated."""


class RequestIdConflict(InvalidArgument):
    """A request_id was reused for a different request."""


class StreamProtocolViolation(InvalidArgument):
    """The Run stream broke protocol."""


class InvalidTenant(InvalidArgument):
    """The tenant name is malformed."""


class ModelRequestRejected(InvalidArgument):
    """The model provider rejected the request (bad parameters, context too long)."""


class NotFound(OrchestratorError):
    """The named resource does not exist."""


class AgentNotFound(NotFound):
    """No agent has the id (`metadata["agent_id"]`)."""


class RunNotFound(NotFound):
    """No run has the id (`metadata["run_id"]`)."""


class SessionNotFound(NotFound):
    """The agent has no session with the id."""


class TeamNotFound(NotFound):
    """No team has the id (`metadata["team_id"]`)."""


class Conflict(OrchestratorError):
    """The request conflicts with the current state: a duplicate, a stale etag, a busy session."""


class AlreadyExists(Conflict):
    """A resource with the id exists."""


class AgentAlreadyExists(AlreadyExists):
    """An agent with the id exists (`metadata["agent_id"]`)."""


class TeamAlreadyExists(AlreadyExists):
    """A team with the id exists (`metadata["team_id"]`)."""


class Aborted(Conflict):
    """A concurrency conflict; retrying later may succeed."""


class EtagMismatch(Aborted):
    """The etag is stale (`metadata.get("current_etag")`)."""


class SessionBusy(Aborted):
    """The session is running another turn (`metadata["active_run_id"]`)."""


class FailedPrecondition(OrchestratorError):
    """The service is not in a state in which the request can succeed."""


class NoDefaultAgent(FailedPrecondition):
    """The run named no agent and no default agent is set."""


class AgentDeleted(FailedPrecondition):
    """The run's agent was deleted while the run waited or ran."""


class AgentInUse(FailedPrecondition):
    """The agent belongs to a team and cannot be deleted (`metadata["team_id"]`)."""


class ModelAuthFailed(FailedPrecondition):
    """The model provider rejected the server's credentials."""


class ModelNotFound(FailedPrecondition):
    """The model provider does not know the agent's model."""


class ProviderNotConfigured(FailedPrecondition):
    """The agent names a provider the server has not configured (`metadata["provider"]`)."""


class ResourceExhausted(OrchestratorError):
    """A quota or size limit was hit."""


class ModelRateLimited(ResourceExhausted):
    """The model provider kept answering 429."""


class RequestTooLarge(ResourceExhausted):
    """A request or field is larger than the server accepts."""


class ModelCallLimit(ResourceExhausted):
    """The run reached its max_model_calls while the model kept calling tools."""


class TooManyPendingTurns(ResourceExhausted):
    """More turns were started on one Run stream than may wait behind its current turn
    (`metadata["limit"]`); the stream ends after the current turn is cancelled."""


class ModelOutputLimit(ResourceExhausted):
    """The model's answer passed the server's limit; the partial output is in the run."""


class ResponseTooLarge(ResourceExhausted):
    """The answer would exceed what the server sends in one message (metadata: bytes)."""


class QuotaExceeded(ResourceExhausted):
    """An operator's quota is used up (`metadata["quota"]`); retry once runs have ended."""


class RunEventsUnavailable(FailedPrecondition):
    """The run's events are no longer kept (journal retention); `get_run` has its outcome."""


class Unavailable(OrchestratorError):
    """The service, or the model behind it, is unavailable; retrying later may succeed."""


class ModelUnavailable(Unavailable):
    """The model provider failed (5xx, connection error, broken stream)."""


class RunInterrupted(Unavailable):
    """The server stopped while the run was in progress."""


class ServerStopping(Unavailable):
    """The server is stopping and starts no new turn; retry (another replica takes it)."""


class StoreUnavailable(Unavailable):
    """The server's database cannot be reached; retry with backoff."""


class DeadlineExceeded(OrchestratorError):
    """The deadline passed before the call finished."""


class ModelTimeout(DeadlineExceeded):
    """The model provider did not answer in time."""


class ClientToolTimeout(DeadlineExceeded):
    """The client did not answer a client-side tool call in time."""


class RunCancelledError(OrchestratorError):
    """The run was cancelled (a cancel message, `cancel_run`, or the server stopping)."""


class RunSuperseded(RunCancelledError):
    """The run was cancelled by a newer turn of its session (BusyPolicy.INTERRUPT)."""


class Unauthenticated(OrchestratorError):
    """The call carried no valid credentials."""


class TokenExpired(Unauthenticated):
    """The credentials were valid but have expired: get new ones."""


class PermissionDenied(OrchestratorError):
    """The caller may not do this."""


class TenantAccessDenied(PermissionDenied):
    """The caller does not belong to the tenant it named (or named none of several)."""


class PolicyDenied(PermissionDenied):
    """The tenant's allowlist does not allow a provider, model, max_tokens or tool."""


class ApiKeyNotFound(NotFound):
    """The tenant has no API key with the id."""


class InternalError(OrchestratorError):
    """An unexpected server error; the server log has the details."""


ERROR_BY_REASON: dict[str, type[OrchestratorError]] = {
    "AGENT_NOT_FOUND": AgentNotFound,
    "AGENT_ALREADY_EXISTS": AgentAlreadyExists,
    "INVALID_AGENT_ID": InvalidAgentId,
    "INVALID_ARGUMENT": InvalidArgument,
    "INVALID_PAGE_SIZE": InvalidPageSize,
    "INVALID_PAGE_TOKEN": InvalidPageToken,
    "INVALID_UPDATE_MASK": InvalidUpdateMask,
    "ETAG_MISMATCH": EtagMismatch,
    "NO_DEFAULT_AGENT": NoDefaultAgent,
    "SESSION_BUSY": SessionBusy,
    "RUN_NOT_FOUND": RunNotFound,
    "SESSION_NOT_FOUND": SessionNotFound,
    "RUN_CANCELLED": RunCancelledError,
    "RUN_SUPERSEDED": RunSuperseded,
    "RUN_EVENTS_UNAVAILABLE": RunEventsUnavailable,
    "RUN_INTERRUPTED": RunInterrupted,
    "SERVER_STOPPING": ServerStopping,
    "STORE_UNAVAILABLE": StoreUnavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "MODEL_RATE_LIMITED": ModelRateLimited,
    "MODEL_UNAVAILABLE": ModelUnavailable,
    "MODEL_AUTH_FAILED": ModelAuthFailed,
    "MODEL_NOT_FOUND": ModelNotFound,
    "PROVIDER_NOT_CONFIGURED": ProviderNotConfigured,
    "MODEL_REQUEST_REJECTED": ModelRequestRejected,
    "MODEL_TIMEOUT": ModelTimeout,
    "STREAM_PROTOCOL_VIOLATION": StreamProtocolViolation,
    "REQUEST_TOO_LARGE": RequestTooLarge,
    "INTERNAL_ERROR": InternalError,
    "REQUEST_ID_CONFLICT": RequestIdConflict,
    "INVALID_TENANT": InvalidTenant,
    "AGENT_DELETED": AgentDeleted,
    "MALFORMED_REQUEST": MalformedRequest,
    "UNKNOWN_TOOL": UnknownTool,
    "MODEL_CALL_LIMIT": ModelCallLimit,
    "CLIENT_TOOL_TIMEOUT": ClientToolTimeout,
    "UNEXPECTED_TOOL_RESULT": UnexpectedToolResult,
    "TEAM_NOT_FOUND": TeamNotFound,
    "TEAM_ALREADY_EXISTS": TeamAlreadyExists,
    "AGENT_IN_USE": AgentInUse,
    "TOO_MANY_PENDING_TURNS": TooManyPendingTurns,
    "MODEL_OUTPUT_LIMIT": ModelOutputLimit,
    "RESPONSE_TOO_LARGE": ResponseTooLarge,
    "QUOTA_EXCEEDED": QuotaExceeded,
    "UNAUTHENTICATED": Unauthenticated,
    "TOKEN_EXPIRED": TokenExpired,
    "PERMISSION_DENIED": PermissionDenied,
    "TENANT_ACCESS_DENIED": TenantAccessDenied,
    "POLICY_DENIED": PolicyDenied,
    "API_KEY_NOT_FOUND": ApiKeyNotFound,
}
"""The class of each ErrorInfo reason (`orchestrator.v1.ErrorReason` names)."""

ERROR_BY_CODE: dict[grpc.StatusCode, type[OrchestratorError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: RunCancelledError,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}
"""The fallback class of each status code, for unknown reasons and plain statuses."""

# The parsing of a status lives beside this table (and needs its classes defined first).
from ._rpc_errors import error_class, from_rpc_error  # noqa: E402

__all__ = ["ERROR_BY_CODE", "ERROR_BY_REASON", "error_class", "from_rpc_error"]
