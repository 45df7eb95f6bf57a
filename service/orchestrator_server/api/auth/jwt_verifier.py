"""Bearer JWTs verified against the operator's JWKS (PyJWT).

Only the algorithms the operator allows are accepted, asymmetric ones unless a shared
secret is configured explicitly; a token's `alg` must also suit the type of the key its
`kid` names, so a token signed HS256 with a public key (key confusion) or `alg: none` is
refused. Issuer, audience, `exp` and `nbf` are checked with a bounded leeway. The key set
is fetched from a file or an HTTPS URL, and fetched again when a token names a key it
does not hold (at most once per `min_refresh_seconds`, so unknown kids cannot make the
server hammer the identity provider). Verified tokens are cached by their hash until they
expire, so a caller that reuses its token pays for the signature check once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from ...core.access import AccessRole, Principal
from ...core.api_keys import unauthenticated
from ...core.errors import Reason, UnauthenticatedError

log = logging.getLogger("orchestrator.auth")
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP", "HS": "oct"}
MAX_TOKEN_CHARS = 8192
MAX_JWKS_BYTES = 1024 * 1024
MAX_CLAIM_ENTRIES = 100
CACHE_ENTRIES = 10_000
CACHE_SECONDS = 300.0
RESERVED_PREFIX = "apikey:"
_ROLE_NAMES = frozenset(role.value for role in AccessRole)


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """How bearer JWTs are verified and mapped to principals ([auth.jwt])."""

    issuer: str
    audience: str
    jwks_url: str = ""
    jwks_file: str = ""
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    # A shared secret for HS256, read from this environment variable; only when set.
    hs256_secret_env: str = ""
    leeway_seconds: float = 30.0
    min_refresh_seconds: float = 10.0
    principal_claim: str = "sub"
    # Temporal-style "<tenant>:<role>" entries.
    permissions_claim: str = "permissions"
    groups_claim: str = "groups"
    extra: Mapping[str, Any] = field(default_factory=dict)


def claims_principal(
    claims: Mapping[str, Any], settings: JwtSettings, authentication: str
) -> Principal:
    """The principal that verified claims describe: id, memberships, groups."""
    subject = claims.get(settings.principal_claim)
    if not isinstance(subject, str) or not subject or len(subject) > 256:
        raise unauthenticated()
    if subject.startswith(RESERVED_PREFIX):
        raise unauthenticated()  # API key principals cannot be claimed by a token
    memberships: dict[str, set[AccessRole]] = {}
    for entry in _string_list(claims.get(settings.permissions_claim)):
        tenant, _, role = entry.rpartition(":")
        if tenant and role in _ROLE_NAMES:  # roles of other systems may share the claim
            memberships.setdefault(tenant, set()).add(AccessRole(role))
    groups = frozenset(_string_list(claims.get(settings.groups_claim)))
    return Principal(
        subject,
        {t: frozenset(r) for t, r in memberships.items()},
        groups,
        authentication,
    )


def _string_list(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value[:MAX_CLAIM_ENTRIES] if isinstance(v, str) and len(v) <= 256]


def _read_url(url: str) -> bytes:
    # The URL is the operator's configuration, not a caller's input.
    with urllib.request.urlopen(url, timeout=5.0) as response:  # noqa: S310
        data: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(data) > MAX_JWKS_BYTES:
        raise ValueError("the JWKS is larger than 1 MiB")
    return data


def _parse_keys(data: bytes) -> dict[str, jwt.PyJWK]:
    keys = {}
    for entry in json.loads(data).get("keys", []):
        try:
            key = jwt.PyJWK(entry)
        except jwt.exceptions.PyJWKError as error:
            log.warning("skipping a JWKS key the server cannot use: %s", error)
            continue
        keys[key.key_id or ""] = key
    return keys


class JwtVerifier:
    """Verifies bearer JWTs and maps their claims to principals."""

    def __init__(
        self,
        settings: JwtSettings,
        *,
        secret: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._secret = secret
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._fetching: asyncio.Future[None] | None = None
        self._verified: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    async def refresh(self) -> None:
        """Fetch the key set again (one fetch at a time, shared by waiting callers)."""
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch())
        fetching = self._fetching
        try:
            await asyncio.shield(fetching)
        finally:
            if fetching.done():
                self._fetching = None

    async def _fetch(self) -> None:
        self._fetched_at = self._clock()
        source = self._settings.jwks_file or self._settings.jwks_url
        if not source:
            return
        if self._settings.jwks_file:
            data = await asyncio.to_thread(Path(source).read_bytes)
        else:
            data = await asyncio.to_thread(_read_url, source)
        self._keys = await asyncio.to_thread(_parse_keys, data)

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; UNAUTHENTICATED (TOKEN_EXPIRED past `exp`)."""
        if len(token) > MAX_TOKEN_CHARS:
            raise unauthenticated()
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        if cached is not None and time.time() < cached[0]:
            return cached[1]
        claims = await self._claims(token)
        principal = claims_principal(claims, self._settings, "jwt")
        expires = min(float(claims["exp"]), time.time() + CACHE_SECONDS)
        self._verified[digest] = (expires, principal)
        while len(self._verified) > CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return principal

    async def _claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.exceptions.PyJWTError:
            raise unauthenticated() from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._settings.algorithms:
            raise unauthenticated()
        key = await self._key_for(algorithm, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud", self._settings.principal_claim]},
            )
        except jwt.exceptions.ExpiredSignatureError:
            raise UnauthenticatedError(
                "the credentials have expired", reason=Reason.TOKEN_EXPIRED
            ) from None
        except jwt.exceptions.PyJWTError:
            raise unauthenticated() from None
        return claims

    async def _key_for(self, algorithm: str, kid: object) -> Any:
        wanted = _KEY_TYPES.get(algorithm[:2])
        if wanted == "oct":
            if not self._secret:
                raise unauthenticated()
            return self._secret
        if not isinstance(kid, str | None):
            raise unauthenticated()
        key = self._keys.get(kid or "")
        if key is None and self._may_refresh():
            try:
                await self.refresh()
            except Exception as error:
                log.warning("could not fetch the JWKS: %s", error)
            key = self._keys.get(kid or "")
        if key is None or key.key_type != wanted:
            raise unauthenticated()
        return key.key

    def _may_refresh(self) -> bool:
        last = self._fetched_at
        return last is None or self._clock() - last >= self._settings.min_refresh_seconds
