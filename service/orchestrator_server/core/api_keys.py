"""API keys: creation by a tenant admin, listing, revocation, and authentication of the
secret a caller presents.

A secret is `ork_<key id>_<43 random characters>` (256 random bits). The store keeps its
SHA-256, not a slow password hash: a slow hash protects guessable passwords, and a random
256-bit secret cannot be guessed, while SHA-256 keeps checking a key at microseconds.
Verified keys are cached for at most `cache_seconds` (1 s), so a revocation reaches every
replica within that time while a busy caller costs one point read per second.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from .access import AccessRole, Principal, current_caller, parse_roles
from .access_port import AccessStore, ApiKey
from .errors import InvalidArgumentError, NotFoundError, Reason, UnauthenticatedError
from .pagination import PageTokens, scope_of
from .types import Page

SECRET_PREFIX = "ork_"  # noqa: S105 (the prefix that marks our keys, not a secret)
_SECRET = re.compile(r"^ork_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
MAX_DISPLAY_NAME = 200
CACHE_ENTRIES = 10_000
# Last-use times are written at most this often per key (a write per call would make
# every authenticated call a write).
TOUCH_INTERVAL = 60.0


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_api_key(credential: str) -> bool:
    """Whether a bearer credential is one of our API keys (rather than a JWT)."""
    return credential.startswith(SECRET_PREFIX)


def key_principal(key_id: str) -> str:
    """The principal a key authenticates."""
    return f"apikey:{key_id}"


def _expired() -> UnauthenticatedError:
    return UnauthenticatedError("the credentials have expired", reason=Reason.TOKEN_EXPIRED)


def unauthenticated() -> UnauthenticatedError:
    """The one answer for credentials that are not valid (whatever is wrong with them)."""
    return UnauthenticatedError("authentication failed")


class ApiKeys:
    """API keys of every tenant: managed by admins, checked on every call using one."""

    def __init__(
        self,
        store: AccessStore,
        tokens: PageTokens,
        *,
        cache_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._touched: dict[str, float] = {}

    async def create(
        self, tenant: str, display_name: str, roles: list[str], expire_time: float | None
    ) -> tuple[ApiKey, str]:
        """A new key of `tenant` and its secret (returned this once)."""
        if len(display_name) > MAX_DISPLAY_NAME:
            raise InvalidArgumentError.for_field(
                "api_key.display_name", f"must be at most {MAX_DISPLAY_NAME} characters"
            )
        granted = parse_roles(roles, "api_key.roles")
        now = self._clock()
        if expire_time is not None and expire_time <= now:
            raise InvalidArgumentError.for_field("api_key.expire_time", "must be in the future")
        key_id = secrets.token_hex(8)
        secret = f"{SECRET_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(
            key_id=key_id,
            tenant=tenant,
            display_name=display_name,
            roles=granted,
            creator=current_caller().principal,
            create_time=now,
            expire_time=expire_time,
            secret_hash=hash_secret(secret),
        )
        await self._store.insert_api_key(key)
        return key, secret

    async def list(self, tenant: str, page_size: int, page_token: str) -> Page[ApiKey]:
        """A page of the tenant's keys in id order."""
        return await self._tokens.fetch_page(
            scope_of("apikeys", tenant),
            page_size,
            page_token,
            lambda after, limit: self._store.list_api_keys(
                tenant, after=str(after[0]) if after else None, limit=limit
            ),
            lambda k: [k.key_id],
        )

    async def revoke(self, tenant: str, key_id: str) -> ApiKey:
        """Revoke a key of the tenant; API_KEY_NOT_FOUND if it has none with the id."""
        if not _KEY_ID.fullmatch(key_id):
            raise InvalidArgumentError.for_field("key_id", "is not an API key id")
        key = await self._store.revoke_api_key(tenant, key_id, self._clock())
        if key is None:
            raise NotFoundError(
                f"API key '{key_id}' not found",
                reason=Reason.API_KEY_NOT_FOUND,
                metadata={"key_id": key_id},
            )
        self._cache.pop(key_id, None)
        return key

    async def authenticate(self, secret: str) -> Principal:
        """The principal of a valid secret; UNAUTHENTICATED (TOKEN_EXPIRED past its
        expiry) otherwise."""
        match = _SECRET.fullmatch(secret)
        if match is None:
            raise unauthenticated()
        key_id = match.group(1)
        now = self._clock()
        key = await self._lookup(key_id, now)
        if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
            raise unauthenticated()
        if key.revoke_time is not None:  # the same answer: a revoked key is no key
            raise unauthenticated()
        if key.expire_time is not None and key.expire_time <= now:
            raise _expired()
        if now - self._touched.get(key_id, 0.0) >= TOUCH_INTERVAL:
            self._touched[key_id] = now
            await self._store.touch_api_key(key_id, now)
        return Principal(key_principal(key_id), {key.tenant: key.roles}, authentication="api_key")

    async def _lookup(self, key_id: str, now: float) -> ApiKey | None:
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        key = await self._store.api_key(key_id)
        self._cache[key_id] = (now, key)
        self._cache.move_to_end(key_id)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        if len(self._touched) > CACHE_ENTRIES:
            self._touched.clear()
        return key


def roles_of(key: ApiKey) -> list[str]:
    """A key's role names in a stable order."""
    return sorted(role.value for role in key.roles)


__all__ = ["AccessRole", "ApiKeys", "hash_secret", "key_principal", "looks_like_api_key"]
