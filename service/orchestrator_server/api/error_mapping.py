"""The one table from domain errors to gRPC status codes, and the rich-status packing.

Every error leaves the server as a `google.rpc.Status` carrying a `google.rpc.ErrorInfo`
(reason from `orchestrator.v1.ErrorReason`, domain `orchestrator.v1`, metadata) and, for
bad input, a `google.rpc.BadRequest` with field violations (AIP-193). Anything that is not
an `OrchestratorError` becomes INTERNAL with a generic message; its details go to the log
only, so no path, SQL or stack trace reaches a client.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..core import errors
from ..core.errors import Reason

ERROR_DOMAIN = "orchestrator.v1"
log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.OrchestratorError], grpc.StatusCode] = {
    errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.AbortedError: grpc.StatusCode.ABORTED,
    errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.RunCancelledError: grpc.StatusCode.CANCELLED,
    errors.OrchestratorError: grpc.StatusCode.INTERNAL,
}


def status_code_for(error: errors.OrchestratorError) -> grpc.StatusCode:
    """The status code of the most specific class of `error` in the table."""
    for cls in type(error).__mro__:
        code = STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_rich_status(error: errors.OrchestratorError) -> grpc.Status:
    """The grpc.Status (code, message, details trailer) for a domain error."""
    code = status_code_for(error)
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
            )
        )
    ]
    if error.violations:
        details.append(
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    if isinstance(error, errors.QuotaExceededError):
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=error.subject,
            description=f"{error.quota}: at most {error.limit}",
        )
        details.append(_packed(error_details_pb2.QuotaFailure(violations=[violation])))
        if error.retry_after is not None:
            delay = duration_pb2.Duration(seconds=math.ceil(error.retry_after))
            details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=details
    )
    rich: grpc.Status = rpc_status.to_status(status)
    return rich


def internal_error() -> errors.OrchestratorError:
    """The generic error shown for anything unexpected."""
    return errors.OrchestratorError(
        "internal error; the server log has the details", reason=Reason.INTERNAL_ERROR
    )


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> NoReturn:
    """Abort the RPC with the mapped status of `error` (logging unexpected ones)."""
    if not isinstance(error, errors.OrchestratorError):
        log.error("unexpected error in %s", _method_name(context), exc_info=error)
        error = internal_error()
    await context.abort_with_status(to_rich_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def _method_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    try:
        return str(context._rpc_event.call_details.method.decode())  # type: ignore[attr-defined]
    except AttributeError:
        return "an RPC"
