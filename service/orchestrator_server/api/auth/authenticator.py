"""Who is calling: the principal of a call's credentials.

In order: a bearer credential (`authorization: Bearer ...`: an API key by its `ork_`
prefix, else a JWT), else the client certificate of a mutual-TLS connection. A
certificate of a trusted proxy may carry the end user's identity in a header, as claims
the proxy verified. Without authentication (a server on loopback) every caller is the
anonymous principal, admin of whichever tenant `x-tenant-id` names.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence

from ...core.access import ANONYMOUS, ANY_TENANT, AccessRole, Principal
from ...core.api_keys import ApiKeys, looks_like_api_key, unauthenticated
from .certificates import CertificatePrincipals
from .config import AuthConfig
from .jwt_verifier import JwtVerifier, claims_principal

Metadata = Sequence[tuple[str, str | bytes]]
ANONYMOUS_PRINCIPAL = Principal(ANONYMOUS, {ANY_TENANT: frozenset({AccessRole.ADMIN})})
MAX_FORWARDED_CHARS = 8192


def _values(metadata: Metadata, key: str) -> list[str]:
    return [
        v if isinstance(v, str) else v.decode("utf-8", "replace") for k, v in metadata if k == key
    ]


class Authenticator:
    """Authenticates calls with the configured methods."""

    def __init__(
        self, config: AuthConfig, api_keys: ApiKeys, jwt_verifier: JwtVerifier | None
    ) -> None:
        self._config = config
        self._api_keys = api_keys
        self._jwt = jwt_verifier
        self._certificates = CertificatePrincipals(config.certificate_principals)

    @property
    def enabled(self) -> bool:
        """Whether calls must carry credentials."""
        return self._config.enabled

    async def authenticate(
        self, metadata: Metadata, auth_context: Mapping[str, Iterable[bytes]]
    ) -> Principal:
        """The call's principal; UNAUTHENTICATED when its credentials are missing or not
        valid."""
        if not self._config.enabled:
            return ANONYMOUS_PRINCIPAL
        bearer = _values(metadata, "authorization")
        forwarded = _values(metadata, self._config.proxy_header)
        if len(bearer) > 1 or len(forwarded) > 1:
            raise unauthenticated()
        if bearer:
            if forwarded:
                raise unauthenticated()
            return await self._bearer(bearer[0])
        principal_id = self._certificates.principal_of(auth_context)
        if principal_id is None:
            raise unauthenticated()
        if forwarded:
            if principal_id not in self._config.proxy_principals:
                raise unauthenticated()
            return self._with_static_roles(self._forwarded(forwarded[0]))
        return self._with_static_roles(Principal(principal_id, {}, authentication="mtls"))

    async def _bearer(self, header: str) -> Principal:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential:
            raise unauthenticated()
        credential = credential.strip()
        if looks_like_api_key(credential):
            return await self._api_keys.authenticate(credential)
        if self._jwt is None:
            raise unauthenticated()
        return self._with_static_roles(await self._jwt.verify(credential))

    def _forwarded(self, value: str) -> Principal:
        """The end user a trusted proxy vouches for: base64url JSON of verified claims."""
        if len(value) > MAX_FORWARDED_CHARS or self._config.jwt is None:
            raise unauthenticated()
        try:
            claims = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        except (binascii.Error, ValueError):
            raise unauthenticated() from None
        if not isinstance(claims, dict):
            raise unauthenticated()
        return claims_principal(claims, self._config.jwt, "proxy")

    def _with_static_roles(self, principal: Principal) -> Principal:
        """Add the memberships and groups the configuration gives the principal."""
        static = self._config.principals.get(principal.principal_id)
        if static is None:
            return principal
        memberships = dict(principal.memberships)
        for tenant, roles in static.tenants.items():
            memberships[tenant] = memberships.get(tenant, frozenset()) | roles
        return Principal(
            principal.principal_id,
            memberships,
            principal.groups | static.groups,
            principal.authentication,
        )
