"""The door of every RPC: authenticate the call, find its tenant, check the RPC's
permission, and record what the audit trail keeps.

The caller is set for the rest of the call (`core.access`): each RPC is served in a task
of its own, whose context dies with it, so nothing leaks into another call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc

from ..core.access import Caller, bind_caller
from ..core.audit import AuditTrail
from ..core.errors import OrchestratorError, PermissionDeniedError, UnauthenticatedError
from ..core.log_context import CURRENT_TRACE, bind_trace
from ..core.types import DEFAULT_TENANT
from .auth.authenticator import Authenticator
from .call_context import named_tenant, trace_of
from .error_mapping import status_code_for
from .permissions import AUDITED_RPCS, RPC_PERMISSIONS, resource_of

log = logging.getLogger("orchestrator.audit")
Context = grpc.aio.ServicerContext[Any, Any]
# Records of callers that did not authenticate (they have no tenant) are kept up to this
# many per second; past it they are counted and logged, so that a flood of bad
# credentials cannot fill the disk.
UNAUTHENTICATED_RECORDS_PER_SECOND = 100


class CallAborted(Exception):
    """A call a servicer ended itself with context.abort() (a2a-sdk's handler does, with
    the A2A error's status): what the audit trail records of it."""

    def __init__(self, code: grpc.StatusCode | None) -> None:
        super().__init__(code)
        self.code = code or grpc.StatusCode.UNKNOWN


def outcome_of(error: BaseException | None) -> tuple[str, str]:
    """The status code name and reason of a call's end."""
    if error is None:
        return "OK", ""
    if isinstance(error, CallAborted):
        return error.code.name, ""
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED", ""
    if isinstance(error, OrchestratorError):
        return status_code_for(error).name, error.reason.value
    return "INTERNAL", ""


class AccessGate:
    """Authenticates, authorizes and audits the calls of the service."""

    def __init__(self, authenticator: Authenticator, audit: AuditTrail) -> None:
        self._authenticator = authenticator
        self._audit = audit
        self._window = 0
        self._window_records = 0
        self._suppressed = 0

    async def admit(self, method: str, request: Any, context: Context) -> Caller:
        """The caller of an RPC, set for the rest of the call; UNAUTHENTICATED,
        TENANT_ACCESS_DENIED or PERMISSION_DENIED (each recorded) otherwise."""
        peer = context.peer() or ""
        metadata = tuple(context.invocation_metadata() or ())
        try:
            principal = await self._authenticator.authenticate(metadata, context.auth_context())
        except UnauthenticatedError as error:
            await self._record_unauthenticated(method, request, peer, error)
            raise
        try:
            caller = principal.caller_for(named_tenant(metadata), DEFAULT_TENANT, peer)
        except PermissionDeniedError as error:
            # Not a member of the tenant it named: the operator's trail, under its name.
            outsider = Caller(
                principal.principal_id,
                "",
                frozenset(),
                principal.groups,
                principal.authentication,
                peer,
            )
            await self._audit.record_call(method, resource_of(request), error, outsider)
            raise
        bind_caller(caller)
        if CURRENT_TRACE.get() is None:  # else the server span (tracing on) has bound it
            bind_trace(trace_of(metadata))
        try:
            caller.require(RPC_PERMISSIONS[method])
        except PermissionDeniedError as error:
            await self._record(method, request, error)
            raise
        return caller

    async def audit(self, method: str, request: Any, error: BaseException | None) -> None:
        """Record an admitted call's end if the trail keeps it."""
        denied = isinstance(error, PermissionDeniedError | UnauthenticatedError)
        if method in AUDITED_RPCS or denied:
            await self._record(method, request, error)

    async def _record(self, method: str, request: Any, error: BaseException | None) -> None:
        await self._audit.record_call(method, resource_of(request), error)

    async def _record_unauthenticated(
        self, method: str, request: Any, peer: str, error: UnauthenticatedError
    ) -> None:
        second = int(time.monotonic())
        if second != self._window:
            if self._suppressed:
                log.warning(
                    "%d failed authentications were not recorded one by one (over %d/s)",
                    self._suppressed,
                    UNAUTHENTICATED_RECORDS_PER_SECOND,
                )
            self._window, self._window_records, self._suppressed = second, 0, 0
        if self._window_records >= UNAUTHENTICATED_RECORDS_PER_SECOND:
            self._suppressed += 1
            return
        self._window_records += 1
        # Nobody, in no tenant: the operator's trail.
        nobody = Caller("", "", frozenset(), peer=peer)
        await self._audit.record_call(method, resource_of(request), error, nobody)
