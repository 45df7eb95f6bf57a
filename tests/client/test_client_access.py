"""The Python client's and the CLI's access-control calls against a server with
authentication on: keys created, listed without secrets, used, revoked; the audit trail
read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from access_helpers import auth_server, make_key
from test_client_cli import cli

from orchestrator import AsyncOrchestrator, Unauthenticated
from orchestrator_devmodel import DevModelServer


async def test_the_client_manages_keys_and_reads_the_audit_trail(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    async with auth_server(tmp_path, devmodel.base_url) as live:
        admin_principal, secret = await make_key(live, "acme", "admin")
        async with AsyncOrchestrator(live.address, token=secret) as admin:
            key, runner_secret = await admin.create_api_key(["runner"], display_name="ci")
            assert key.roles == ("runner",) and key.expire_time is None
            listed = [k async for k in admin.iter_api_keys()]
            assert key.key_id in {k.key_id for k in listed}
            assert all(runner_secret not in repr(k) for k in listed)
            async with AsyncOrchestrator(live.address, token=runner_secret) as runner:
                assert await runner.list_agents() == []
                revoked = await admin.revoke_api_key(key.key_id)
                assert revoked.revoke_time is not None
                with pytest.raises(Unauthenticated):
                    await runner.list_agents()
            await live.app.access.audit.flush()
            events = [e async for e in admin.iter_audit_events(method="RevokeApiKey")]
            assert [(e.principal, e.resource, e.outcome) for e in events] == [
                (admin_principal, f"apikeys/{key.key_id}", "OK")
            ]

        # The CLI: --token, keys create / list, audit list.
        made = await cli(
            live.address, "keys", "create", "--role", "viewer", "--json", "--token", secret
        )
        assert made.code == 0, made.err
        created = made.json()
        assert isinstance(created, dict) and created["secret"].startswith("ork_")
        listing = await cli(live.address, "keys", "list", "--json", "--token", secret)
        assert created["key_id"] in listing.out and created["secret"] not in listing.out
        audit = await cli(
            live.address, "audit", "list", "--method", "CreateApiKey", "--json", "--token", secret
        )
        assert audit.code == 0 and "CreateApiKey" in audit.out
        refused = await cli(live.address, "keys", "list", "--token", "ork_nope")
        assert refused.code != 0 and "authentication failed" in refused.err
