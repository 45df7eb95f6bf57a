"""Roles, API keys (revocation, expiry, no secrets in listings), per-agent access,
allowlists, the audit trail of a scripted session, and the refusal to serve without
authentication beyond loopback."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from access_helpers import Identity, auth_server, code_of, key_identity
from google.protobuf.timestamp_pb2 import Timestamp

from helpers import dev_settings, requests_of, start
from orchestrator.v1 import access_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelServer
from orchestrator_server.a2a_setup import A2A_SERVICE, CARD_METHOD
from orchestrator_server.api.permissions import RPC_PERMISSIONS
from orchestrator_server.core.access import ROLE_PERMISSIONS, AccessRole, Permission
from orchestrator_server.core.access_port import AuditQuery
from orchestrator_server.core.policy import TenantPolicy
from orchestrator_server.server import SERVICE_DESCRIPTOR, build_server, create_app

OK = (grpc.StatusCode.OK, "")
DENIED = (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


def test_every_rpc_has_a_permission_and_every_role_its_set() -> None:
    served = {m.name for m in (*SERVICE_DESCRIPTOR.methods, *A2A_SERVICE.methods)}
    assert set(RPC_PERMISSIONS) == served | {CARD_METHOD}
    assert ROLE_PERMISSIONS[AccessRole.VIEWER] == {Permission.READ}
    assert ROLE_PERMISSIONS[AccessRole.RUNNER] == {Permission.READ, Permission.RUN}
    assert Permission.ADMINISTER not in ROLE_PERMISSIONS[AccessRole.EDITOR]
    assert ROLE_PERMISSIONS[AccessRole.ADMIN] == set(Permission)


async def _create(who: Identity, agent_id: str, **agent: object) -> tuple[grpc.StatusCode, str]:
    request = pb.CreateAgentRequest(agent={"agent_id": agent_id, **agent})
    return await code_of(who.stub.CreateAgent(request, **who.kw()))


async def _run(who: Identity, agent_id: str, session: str = "s") -> tuple[grpc.StatusCode, str]:
    call = who.stub.Run(requests_of(start("hi", agent_id, session_id=session)), **who.kw())
    return await code_of(call)


async def test_roles_decide_what_a_caller_may_do(devmodel: DevModelServer, tmp_path: Path) -> None:
    async with auth_server(tmp_path, devmodel.base_url) as live:
        admin = await key_identity(live, "acme", "admin")
        editor = await key_identity(live, "acme", "editor")
        runner = await key_identity(live, "acme", "runner")
        viewer = await key_identity(live, "acme", "viewer")
        assert await _create(viewer, "a") == DENIED
        assert await _create(runner, "a") == DENIED
        assert await _create(editor, "a") == OK
        assert await _run(viewer, "a") == DENIED
        assert await _run(runner, "a") == OK
        keys = editor.stub.ListApiKeys(access_pb2.ListApiKeysRequest(), **editor.kw())
        assert await code_of(keys) == DENIED
        assert (
            await code_of(admin.stub.ListApiKeys(access_pb2.ListApiKeysRequest(), **admin.kw()))
            == OK
        )
        # No credentials, or a malformed one: UNAUTHENTICATED.
        for metadata in (
            (),
            (("authorization", "Bearer ork_nope"),),
            (("authorization", "Basic x"),),
        ):
            call = live.stub.ListAgents(pb.ListAgentsRequest(), metadata=metadata)
            assert await code_of(call) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")


async def test_agent_access_lists(devmodel: DevModelServer, tmp_path: Path) -> None:
    async with auth_server(tmp_path, devmodel.base_url) as live:
        editor = await key_identity(live, "acme", "editor")
        alice = await key_identity(live, "acme", "runner")
        bob = await key_identity(live, "acme", "runner")
        access = {"runners": [f"principal:{alice.principal}"], "readers": ["role:runner"]}
        assert await _create(editor, "private", access=access) == OK
        assert (
            await _create(editor, "hidden", access={"runners": [f"principal:{alice.principal}"]})
            == OK
        )
        assert await _run(alice, "private") == OK
        assert await _run(bob, "private") == DENIED  # bob may read it, not run it
        assert await _run(bob, "hidden") == (grpc.StatusCode.NOT_FOUND, "AGENT_NOT_FOUND")
        get = bob.stub.GetAgent(pb.GetAgentRequest(agent_id="hidden"), **bob.kw())
        assert await code_of(get) == (grpc.StatusCode.NOT_FOUND, "AGENT_NOT_FOUND")
        listed = await bob.stub.ListAgents(pb.ListAgentsRequest(), **bob.kw())
        assert [a.agent_id for a in listed.agents] == ["private"]
        bad = {"runners": ["everyone"]}
        assert (await _create(editor, "bad", access=bad))[0] == grpc.StatusCode.INVALID_ARGUMENT


async def test_api_keys_expire_revoke_and_never_show_secrets(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    async with auth_server(tmp_path, devmodel.base_url) as live:
        admin = await key_identity(live, "acme", "admin")
        made = await admin.stub.CreateApiKey(
            access_pb2.CreateApiKeyRequest(api_key={"roles": ["runner"], "display_name": "ci"}),
            **admin.kw(),
        )
        user = Identity(live.stub, (("authorization", f"Bearer {made.secret}"),))
        assert await code_of(user.stub.ListAgents(pb.ListAgentsRequest(), **user.kw())) == OK
        listed = await admin.stub.ListApiKeys(access_pb2.ListApiKeysRequest(), **admin.kw())
        # The secret part may itself contain "_" (URL-safe base64): split at the first two.
        assert made.secret not in str(listed) and made.secret.split("_", 2)[2] not in str(listed)
        assert made.api_key.key_id in {k.key_id for k in listed.api_keys}
        await admin.stub.RevokeApiKey(
            access_pb2.RevokeApiKeyRequest(key_id=made.api_key.key_id), **admin.kw()
        )
        # Refused within the cache's second (on this replica at once: revoke drops it).
        revoked_at = time.monotonic()
        while await code_of(user.stub.ListAgents(pb.ListAgentsRequest(), **user.kw())) == OK:
            assert time.monotonic() - revoked_at < 1.5
        missing = admin.stub.RevokeApiKey(
            access_pb2.RevokeApiKeyRequest(key_id="0123456789abcdef"), **admin.kw()
        )
        assert await code_of(missing) == (grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND")


async def test_an_expired_key_is_refused_with_token_expired(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    async with auth_server(tmp_path, devmodel.base_url) as live:
        admin = await key_identity(live, "acme", "admin")
        expire = Timestamp()
        expire.FromNanoseconds(int((time.time() + 0.5) * 1e9))
        made = await admin.stub.CreateApiKey(
            access_pb2.CreateApiKeyRequest(api_key={"roles": ["viewer"], "expire_time": expire}),
            **admin.kw(),
        )
        user = Identity(live.stub, (("authorization", f"Bearer {made.secret}"),))
        # An hour passes for the key cache (its clock), not for the test.
        live.app.access.api_keys._cache.clear()
        real_clock = live.app.access.api_keys._clock
        live.app.access.api_keys._clock = lambda: real_clock() + 1.0
        try:
            call = user.stub.ListAgents(pb.ListAgentsRequest(), **user.kw())
            assert await code_of(call) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")
        finally:
            live.app.access.api_keys._clock = real_clock


async def test_allowlists_apply_at_create_and_at_run_time(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    policy = TenantPolicy(providers=("dev",), models=("dev-*",), max_tokens=100, tools=())
    async with auth_server(tmp_path, devmodel.base_url, policies={"acme": policy}) as live:
        editor = await key_identity(live, "acme", "editor")
        denied = (grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED")
        assert await _create(editor, "a", model={"model": "gpt-4o"}) == denied
        assert await _create(editor, "b", model={"max_tokens": 5000}) == denied
        assert await _create(editor, "c", tools=["calculator"]) == denied
        assert await _create(editor, "ok", model={"max_tokens": 50}) == OK
        assert await _run(editor, "ok") == OK
        # The operator narrows the allowlist: the existing agent no longer runs.
        narrowed = replace(policy, max_tokens=10)
        live.app.access.policies._by_tenant["acme"] = narrowed
        assert await _run(editor, "ok") == denied


async def test_the_audit_trail_of_a_scripted_session(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    async with auth_server(tmp_path, devmodel.base_url) as live:
        admin = await key_identity(live, "acme", "admin")
        viewer = await key_identity(live, "acme", "viewer")
        assert await _create(admin, "a") == OK
        assert await _create(viewer, "b") == DENIED
        assert await _run(admin, "a") == OK
        await code_of(live.stub.ListAgents(pb.ListAgentsRequest()))  # no credentials
        outsider = await key_identity(live, "globex", "admin")
        probe = (*outsider.metadata, ("x-tenant-id", "acme"))
        await code_of(live.stub.ListAgents(pb.ListAgentsRequest(), metadata=probe))
        assert (
            await code_of(admin.stub.GetAgent(pb.GetAgentRequest(agent_id="a"), **admin.kw())) == OK
        )
        await live.app.access.audit.flush()
        page = await admin.stub.ListAuditEvents(access_pb2.ListAuditEventsRequest(), **admin.kw())
        seen = [(e.principal, e.method, e.resource, e.outcome, e.reason) for e in page.events]
        run_id = seen[0][2]
        assert seen == [
            (admin.principal, "Run", run_id, "OK", ""),
            (viewer.principal, "CreateAgent", "agents/b", "PERMISSION_DENIED", "PERMISSION_DENIED"),
            (admin.principal, "CreateAgent", "agents/a", "OK", ""),
        ]
        assert run_id.startswith("runs/run_")
        assert all(e.peer.startswith("ipv4:127.0.0.1") and e.tenant == "acme" for e in page.events)
        only = await admin.stub.ListAuditEvents(
            access_pb2.ListAuditEventsRequest(method="CreateAgent", page_size=1), **admin.kw()
        )
        assert [e.resource for e in only.events] == ["agents/b"]
        rest = await admin.stub.ListAuditEvents(
            access_pb2.ListAuditEventsRequest(
                method="CreateAgent", page_size=1, page_token=only.next_page_token
            ),
            **admin.kw(),
        )
        assert [e.resource for e in rest.events] == ["agents/a"] and not rest.next_page_token
        # The unauthenticated call, and the other tenant's probe of acme, are in the
        # operator's trail (no tenant), not acme's.
        events = await live.app.access.audit._store.list_audit("", _query())
        assert [(e.principal, e.method, e.outcome, e.reason) for e in events] == [
            (outsider.principal, "ListAgents", "PERMISSION_DENIED", "TENANT_ACCESS_DENIED"),
            ("", "ListAgents", "UNAUTHENTICATED", "UNAUTHENTICATED"),
        ]


def _query() -> AuditQuery:
    return AuditQuery(10)


async def test_no_authentication_beyond_loopback_is_refused(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    settings = dev_settings(tmp_path / "open.db", devmodel.base_url, address="0.0.0.0:0")
    app = await create_app(settings)
    try:
        with pytest.raises(ValueError, match="without authentication"):
            build_server(app)
        app.settings = replace(settings, allow_unauthenticated=True)
        server, port = build_server(app)
        assert port > 0
        await server.stop(0)
    finally:
        await app.close()
