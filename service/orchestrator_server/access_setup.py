"""Wires access control: API keys and the audit trail over the store, the authenticator,
the access gate in front of every RPC, and the tenants' allowlists."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .api.access_gate import AccessGate, outcome_of
from .api.auth.authenticator import Authenticator
from .api.auth.jwt_verifier import JwtVerifier
from .config import Settings
from .core.access_port import AccessStore
from .core.api_keys import ApiKeys
from .core.audit import AuditTrail
from .core.pagination import PageTokens
from .core.policy import TenantPolicies
from .models.catalog import ProviderCatalog
from .server_checks import listens_on_loopback

log = logging.getLogger("orchestrator")


@dataclass
class Access:
    """The parts of access control the server holds."""

    api_keys: ApiKeys
    audit: AuditTrail
    gate: AccessGate
    policies: TenantPolicies


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without authentication beyond this machine, unless the operator
    said so explicitly; warn when serving without it at all."""
    if settings.auth.enabled:
        return
    exposed = [a for a in (settings.address, settings.a2a_address) if a]
    outside = [a for a in exposed if not listens_on_loopback(a)]
    if outside and not settings.allow_unauthenticated:
        raise ValueError(
            f"the server would listen on {outside[0]} without authentication: turn "
            "authentication on ([auth] enabled = true, or ORCHESTRATOR_AUTH=on), listen on "
            "loopback, or set allow_unauthenticated = true when a proxy in front of the "
            "server authenticates every call"
        )
    log.warning(
        "authentication is off: every caller is admin of any tenant it names in "
        "x-tenant-id (fine on loopback for development; see the README's security section)"
    )


async def build_access(
    settings: Settings,
    access_store: AccessStore,
    tokens: PageTokens,
    catalog: ProviderCatalog,
    *,
    shared: bool = False,
) -> Access:
    """API keys, audit trail (started), authenticator, gate and allowlists; `shared`: the
    store is shared with other replicas."""
    api_keys = ApiKeys(access_store, tokens, cache_seconds=settings.auth.api_key_cache_seconds)
    audit = AuditTrail(
        access_store,
        tokens,
        retention_days=settings.audit_retention_days,
        to_log=settings.audit_log,
        outcome_of=outcome_of,
        shared=shared,
    )
    audit.start()
    verifier = None
    if settings.auth.jwt is not None:
        verifier = JwtVerifier(settings.auth.jwt, secret=settings.auth.jwt_secret)
        try:
            await verifier.refresh()
        except Exception as error:  # fetched again when the first token arrives
            log.warning("could not fetch the JWKS at start-up: %s", error)
    gate = AccessGate(Authenticator(settings.auth, api_keys, verifier), audit)
    return Access(api_keys, audit, gate, TenantPolicies(settings.policies, catalog.effective))
