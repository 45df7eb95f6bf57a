"""From a failed call to the typed exception of its ErrorInfo reason (see errors.py)."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from .errors import (
    ERROR_BY_CODE,
    ERROR_BY_REASON,
    ERROR_DOMAIN,
    FieldViolation,
    InternalError,
    OrchestratorError,
)


def error_class(code: grpc.StatusCode, reason: str) -> type[OrchestratorError]:
    """The class for a reason, else for the status code, else InternalError."""
    return ERROR_BY_REASON.get(reason) or ERROR_BY_CODE.get(code) or InternalError


def from_rpc_error(error: grpc.RpcError) -> OrchestratorError:
    """The typed exception for a failed call (sync or asyncio)."""
    call: Any = error
    code: grpc.StatusCode = (
        call.code() if callable(getattr(call, "code", None)) else None
    ) or grpc.StatusCode.UNKNOWN
    message: str = (call.details() if callable(getattr(call, "details", None)) else "") or ""
    try:
        status = rpc_status.from_call(call)
    except ValueError:
        # The details trailer disagrees with the status: trust the status line.
        status = None
    reason = ""
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    if status is not None:
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.domain in ("", ERROR_DOMAIN):
                    reason = info.reason
                    metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
    cls = error_class(code, reason)
    return cls(
        message or code.name,
        code=code,
        reason=reason,
        metadata=metadata,
        field_violations=tuple(violations),
        status=status,
    )
