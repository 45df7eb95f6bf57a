"""The `[auth]` table of the server configuration, checked at start-up.

[auth]
enabled = true                       # or ORCHESTRATOR_AUTH=on
[auth.principals.billing-svc]        # roles of principals whose credentials carry none
tenants = { billing = ["runner"] }   #   (client certificates; JWTs without permissions)
groups = ["payments"]
[auth.mtls]
principals = { "spiffe://mesh/ns/billing/sa/agent" = "billing-svc" }
[auth.jwt]
issuer = "https://idp.example"
audience = "orchestrator"
jwks_url = "https://idp.example/.well-known/jwks.json"   # or jwks_file
[auth.trusted_proxy]
principals = ["mesh-gateway"]        # mTLS principals allowed to forward end users
header = "x-end-user-claims"         # base64url JSON claims, mapped like a JWT's
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ...core.access import AccessRole, parse_roles
from ...core.errors import InvalidArgumentError
from .jwt_verifier import ASYMMETRIC, JwtSettings

MAX_LEEWAY_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class StaticPrincipal:
    """Memberships and groups the configuration gives a principal."""

    tenants: Mapping[str, frozenset[AccessRole]]
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Everything authentication is configured with."""

    enabled: bool = False
    principals: Mapping[str, StaticPrincipal] = field(default_factory=dict)
    certificate_principals: Mapping[str, str] = field(default_factory=dict)
    jwt: JwtSettings | None = None
    jwt_secret: str = ""
    proxy_principals: frozenset[str] = frozenset()
    proxy_header: str = "x-end-user-claims"
    api_key_cache_seconds: float = 1.0


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f"auth.{key} must be a table")
    return value


def _static_principal(name: str, table: Any) -> StaticPrincipal:
    if not isinstance(table, dict) or set(table) - {"tenants", "groups"}:
        raise ValueError(f"auth.principals.{name} takes tenants and groups")
    try:
        tenants = {
            t: parse_roles(roles, f"auth.principals.{name}.tenants.{t}")
            for t, roles in (table.get("tenants") or {}).items()
        }
    except InvalidArgumentError as error:
        raise ValueError(error.message) from None
    return StaticPrincipal(tenants, frozenset(table.get("groups") or ()))


def _jwt_settings(table: dict[str, Any]) -> tuple[JwtSettings, str]:
    known = {f.name for f in fields(JwtSettings)} - {"extra"}
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"auth.jwt: unknown keys {', '.join(sorted(unknown))}")
    for required in ("issuer", "audience"):
        if not table.get(required):
            raise ValueError(f"auth.jwt.{required} is required")
    if "algorithms" in table:
        table["algorithms"] = tuple(table["algorithms"])
    settings = JwtSettings(**table)
    symmetric = [a for a in settings.algorithms if a not in ASYMMETRIC]
    if symmetric not in ([], ["HS256"]):
        raise ValueError(f"auth.jwt.algorithms: {', '.join(symmetric)} is not allowed")
    secret = os.environ.get(settings.hs256_secret_env, "") if settings.hs256_secret_env else ""
    if symmetric and len(secret) < 32:
        raise ValueError(
            "auth.jwt: HS256 needs hs256_secret_env naming a variable with a secret of at "
            "least 32 characters"
        )
    if not symmetric and not (settings.jwks_url or settings.jwks_file):
        raise ValueError("auth.jwt needs jwks_url or jwks_file")
    if settings.jwks_url and not settings.jwks_url.startswith(
        ("https://", "http://127.", "http://localhost")
    ):
        raise ValueError("auth.jwt.jwks_url must be https (or http on loopback)")
    if not 0 <= settings.leeway_seconds <= MAX_LEEWAY_SECONDS:
        raise ValueError(f"auth.jwt.leeway_seconds must be between 0 and {MAX_LEEWAY_SECONDS:.0f}")
    return settings, secret


def parse_auth(data: Mapping[str, Any], enabled_by_env: bool = False) -> AuthConfig:
    """The auth configuration from the `[auth]` table (ValueError when it is wrong)."""
    known = {"enabled", "principals", "mtls", "jwt", "trusted_proxy", "api_key_cache_seconds"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"auth: unknown keys {', '.join(sorted(unknown))}")
    principals = {n: _static_principal(n, t) for n, t in _table(data, "principals").items()}
    mapping = _table(data, "mtls").get("principals") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise ValueError("auth.mtls.principals maps certificate identities to principal names")
    if any(v.startswith("apikey:") for v in mapping.values()):
        raise ValueError("auth.mtls.principals: 'apikey:' names are reserved for API keys")
    jwt_table = _table(data, "jwt")
    jwt_settings, secret = _jwt_settings(dict(jwt_table)) if jwt_table else (None, "")
    proxy = _table(data, "trusted_proxy")
    return AuthConfig(
        enabled=bool(data.get("enabled", False)) or enabled_by_env,
        principals=principals,
        certificate_principals=mapping,
        jwt=jwt_settings,
        jwt_secret=secret,
        proxy_principals=frozenset(proxy.get("principals") or ()),
        proxy_header=str(proxy.get("header") or "x-end-user-claims").lower(),
        api_key_cache_seconds=float(data.get("api_key_cache_seconds", 1.0)),
    )
