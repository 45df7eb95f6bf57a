"""Helpers of the access-control tests: a server with authentication on, keys made by
the operator, stubs that call with a credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from helpers import LiveServer, start_live_server
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator_server.api.auth.config import AuthConfig
from orchestrator_server.core.access import AccessRole, Caller, acting_as


@dataclass
class Identity:
    """A caller of the tests: a stub and the metadata it sends with every call."""

    stub: pb_grpc.OrchestratorServiceStub
    metadata: tuple[tuple[str, str], ...]
    principal: str = ""

    def kw(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments of a call: the identity's metadata."""
        return {"metadata": self.metadata, **extra}


@asynccontextmanager
async def auth_server(
    tmp_path: Path, model_url: str, **overrides: Any
) -> AsyncIterator[LiveServer]:
    """A live server with authentication on (API keys, plus what `overrides` adds)."""
    overrides.setdefault("auth", AuthConfig(enabled=True))
    live = await start_live_server(tmp_path / "auth.db", model_url, **overrides)
    try:
        yield live
    finally:
        await live.stop()


async def make_key(live: LiveServer, tenant: str, *roles: str) -> tuple[str, str]:
    """An API key made by the operator: (principal, secret)."""
    operator = Caller("operator", tenant, frozenset({AccessRole.ADMIN}))
    with acting_as(operator):
        key, secret = await live.app.access.api_keys.create(tenant, "test", list(roles), None)
    return f"apikey:{key.key_id}", secret


async def key_identity(
    live: LiveServer, tenant: str, *roles: str, name_tenant: bool = False
) -> Identity:
    """A caller authenticated by a new key of `tenant` with `roles`."""
    principal, secret = await make_key(live, tenant, *roles)
    metadata = [("authorization", f"Bearer {secret}")]
    if name_tenant:
        metadata.append(("x-tenant-id", tenant))
    return Identity(live.stub, tuple(metadata), principal)


async def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    """The status code and ErrorInfo reason a call ends with (OK, "" on success)."""
    from helpers import error_info

    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        try:
            return error.code(), error_info(error).reason
        except AssertionError:
            return error.code(), ""
    return grpc.StatusCode.OK, ""
